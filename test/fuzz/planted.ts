// A fuzz function with planted bugs for test/unit/fuzz-jazzer.test.ts: the Jazzer engine must
// find each one from the gguf seeds and report it (PLANTED=crash: an untyped TypeError once the
// input starts with "{}"; PLANTED=hang: a 3 s busy loop on the same input, over the 1 s limit).
export function fuzz(data: Buffer): void {
  if (data.length >= 2 && data[0] === 0x7b && data[1] === 0x7d) {
    if (process.env.PLANTED === 'hang') {
      const until = Date.now() + 3000
      while (Date.now() < until) {}
    }
    throw new TypeError('planted')
  }
}
