import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { privateKeyToAddress } from 'viem/accounts'
import { decryptKeystore, encryptKeystore, KeystoreError, parseKeystore } from '../../src/crypto/keystore.ts'

// The two test vectors of the Web3 Secret Storage Definition (also go-ethereum's
// accounts/keystore/testdata/v3_test_vector.json): password "testpassword".
const PRIV = '0x7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d'
const SCRYPT_VECTOR = {
  crypto: {
    cipher: 'aes-128-ctr',
    cipherparams: { iv: '83dbcc02d8ccb40e466191a123791e0e' },
    ciphertext: 'd172bf743a674da9cdad04534d56926ef8358534d458fffccd4e6ad2fbde479c',
    kdf: 'scrypt',
    kdfparams: {
      dklen: 32,
      n: 262144,
      r: 1,
      p: 8,
      salt: 'ab0c7876052600dd703518d6fc3fe8984592145b591fc8fb5c6d43190334ba19'
    },
    mac: '2103ac29920d71da29f15d75b4a16dbe95cfd7ff8faea1056c33131d846e3097'
  },
  id: '3198bc9c-6672-5ab3-d995-4942343ae5b6',
  version: 3
}
const PBKDF2_VECTOR = {
  crypto: {
    cipher: 'aes-128-ctr',
    cipherparams: { iv: '6087dab2f9fdbbfaddc31a909735c1e6' },
    ciphertext: '5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46',
    kdf: 'pbkdf2',
    kdfparams: {
      c: 262144,
      dklen: 32,
      prf: 'hmac-sha256',
      salt: 'ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd'
    },
    mac: '517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2'
  },
  id: '3198bc9c-6672-5ab3-d995-4942343ae5b6',
  version: 3
}
const LIGHT = { n: 1024, r: 8, p: 1 }

test('decrypts the spec scrypt test vector', () => {
  assert.is(decryptKeystore(parseKeystore(JSON.stringify(SCRYPT_VECTOR)), 'testpassword'), PRIV)
})

test('decrypts the spec pbkdf2 test vector', () => {
  assert.is(decryptKeystore(parseKeystore(JSON.stringify(PBKDF2_VECTOR)), 'testpassword'), PRIV)
})

test('a wrong password is a KeystoreError naming the MAC, not garbage key bytes', () => {
  const ks = parseKeystore(JSON.stringify(PBKDF2_VECTOR))
  const err = (() => {
    try {
      decryptKeystore(
        { ...ks, crypto: { ...ks.crypto, kdfparams: { ...ks.crypto.kdfparams, c: 1000 } } },
        'x'
      )
    } catch (e) {
      return e
    }
  })()
  assert.instance(err, KeystoreError)
  assert.match((err as Error).message, /wrong password/)
})

test('encrypt then decrypt gives the key back, with geth-shaped fields', () => {
  const ks = encryptKeystore(PRIV, 'pässword', LIGHT)
  assert.is(ks.address, privateKeyToAddress(PRIV).slice(2).toLowerCase())
  assert.match(ks.id, /^[0-9a-f-]{36}$/)
  assert.is(ks.crypto.kdf, 'scrypt')
  assert.is(decryptKeystore(parseKeystore(JSON.stringify(ks)), 'pässword'), PRIV)
  // a fresh salt and iv each time
  assert.is.not(encryptKeystore(PRIV, 'pässword', LIGHT).crypto.ciphertext, ks.crypto.ciphertext)
})

test('an address that does not match the decrypted key is refused', () => {
  const ks = encryptKeystore(PRIV, 'pw', LIGHT)
  assert.throws(() => decryptKeystore({ ...ks, address: '00'.repeat(20) }, 'pw'), /does not belong/)
})

test('malformed files get a KeystoreError saying which field', () => {
  const cases: [string, RegExp][] = [
    ['not json', /not JSON/],
    ['[]', /JSON object/],
    [JSON.stringify({ ...SCRYPT_VECTOR, version: 1 }), /version must be 3/],
    [JSON.stringify({ version: 3 }), /crypto section/],
    [
      JSON.stringify({ ...SCRYPT_VECTOR, crypto: { ...SCRYPT_VECTOR.crypto, cipher: 'aes-128-cbc' } }),
      /cipher/
    ],
    [JSON.stringify({ ...SCRYPT_VECTOR, crypto: { ...SCRYPT_VECTOR.crypto, mac: 'zz' } }), /crypto.mac/],
    [JSON.stringify({ ...SCRYPT_VECTOR, crypto: { ...SCRYPT_VECTOR.crypto, kdf: 'argon2' } }), /kdf/]
  ]
  for (const [text, re] of cases)
    assert.throws(
      () => parseKeystore(text),
      (e: Error) => e instanceof KeystoreError && re.test(e.message)
    )
})

test('hostile KDF costs are refused before any work is done', () => {
  const ks = parseKeystore(JSON.stringify(SCRYPT_VECTOR))
  const huge = { ...ks, crypto: { ...ks.crypto, kdfparams: { ...ks.crypto.kdfparams, n: 2 ** 24, r: 64 } } }
  assert.throws(() => decryptKeystore(huge, 'testpassword'), /at most 1 GiB/)
  const odd = { ...ks, crypto: { ...ks.crypto, kdfparams: { ...ks.crypto.kdfparams, n: 1000 } } }
  assert.throws(() => decryptKeystore(odd, 'testpassword'), /power of two/)
})

test.run()
