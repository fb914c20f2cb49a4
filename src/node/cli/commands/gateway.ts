// `openlora gateway keys add|list|revoke`: API keys of the node's OpenAI-compatible gateway, kept
// hashed in <dataDir>/gateway-keys.json (the running gateway re-reads the file when it changes).
import { mkdirSync } from 'node:fs'
import { KeyStore } from '../../../gateway/keys.ts'
import type { Command } from '../command.ts'
import { UsageError } from '../command.ts'
import { configFromFlags, configOptions } from './shared.ts'

function store(values: Record<string, unknown>): KeyStore {
  const config = configFromFlags(values as Record<string, string | boolean | string[] | undefined>)
  mkdirSync(config.dataDir, { recursive: true })
  return new KeyStore(config.dataDir)
}

const keysAdd: Command = {
  name: 'gateway keys add',
  summary: 'create a gateway API key (printed once; only its hash is stored)',
  positionals: 'NAME',
  options: {
    ...configOptions,
    admin: { type: 'boolean', description: 'may load and unload adapters (/v1/load_lora_adapter)' },
    'max-spend': {
      type: 'string',
      description: 'wei this key’s jobs may cost in total (default: no limit)',
      valueName: 'WEI'
    },
    rate: { type: 'string', description: 'requests per minute (default: no limit)', valueName: 'N' },
    json: { type: 'boolean', description: 'print JSON' }
  },
  async run({ values, positionals }) {
    if (positionals.length !== 1 || !/^[A-Za-z0-9._-]{1,64}$/.test(positionals[0]!))
      throw new UsageError('give one key NAME of 1-64 letters, digits, dots, dashes or underscores')
    const maxSpend = values['max-spend']
    if (maxSpend !== undefined && !/^[0-9]{1,78}$/.test(String(maxSpend)))
      throw new UsageError('--max-spend must be an integer number of wei')
    const rate = values.rate === undefined ? 0 : Number(values.rate)
    if (!Number.isInteger(rate) || rate < 0 || rate > 1_000_000)
      throw new UsageError('--rate must be an integer 0..1000000')
    const s = store(values)
    if (s.active().some((k) => k.name === positionals[0]))
      throw new UsageError(`an active key named ${positionals[0]} exists`)
    const { key, record } = s.add({
      name: positionals[0]!,
      admin: values.admin === true,
      maxSpend: maxSpend === undefined ? '' : String(maxSpend),
      ratePerMinute: rate
    })
    if (values.json === true) console.log(JSON.stringify({ key, id: record.id, name: record.name }))
    else console.log(`${key}\n(keep it: only its hash is stored; id ${record.id})`)
    return 0
  }
}

const keysList: Command = {
  name: 'gateway keys list',
  summary: 'list the gateway API keys (never their secrets)',
  options: { ...configOptions, json: { type: 'boolean', description: 'print JSON' } },
  async run({ values }) {
    const keys = store(values)
      .records()
      .map(({ hash: _h, ...k }) => k)
    if (values.json === true) console.log(JSON.stringify(keys))
    else
      for (const k of keys)
        console.log(
          `${k.id}  ${k.name}${k.admin ? ' [admin]' : ''}  spend ${k.maxSpend || 'unlimited'}  rate ${k.ratePerMinute || 'unlimited'}/min${k.revokedAt ? '  REVOKED' : ''}`
        )
    return 0
  }
}

const keysRevoke: Command = {
  name: 'gateway keys revoke',
  summary: 'revoke a gateway API key by id or name (the running gateway refuses it at once)',
  positionals: 'ID|NAME',
  options: { ...configOptions },
  async run({ values, positionals }) {
    if (positionals.length !== 1) throw new UsageError('give the key id or name')
    try {
      const k = store(values).revoke(positionals[0]!)
      console.log(`revoked ${k.id} (${k.name})`)
    } catch (err) {
      throw new UsageError((err as Error).message)
    }
    return 0
  }
}

export const gatewayCommands: Command[] = [keysAdd, keysList, keysRevoke]
