// A password prompt on the terminal with echo off. Only on a TTY: a script must use
// --password-file, so a password never ends up in shell history or a pipe by accident.
import { UsageError } from './command.ts'

export async function promptPassword(question: string): Promise<string> {
  const stdin = process.stdin
  if (!stdin.isTTY) throw new UsageError('no terminal to ask for a password; pass --password-file FILE')
  process.stderr.write(question)
  stdin.setRawMode(true)
  stdin.resume()
  stdin.setEncoding('utf8')
  try {
    return await new Promise<string>((resolve, reject) => {
      let buf = ''
      const onData = (chunk: string) => {
        for (const ch of chunk) {
          if (ch === '\r' || ch === '\n') {
            stdin.off('data', onData)
            process.stderr.write('\n')
            resolve(buf)
            return
          }
          if (ch === '\u0003') {
            stdin.off('data', onData)
            reject(new UsageError('cancelled'))
            return
          }
          if (ch === '\u007f' || ch === '\b') buf = buf.slice(0, -1)
          else buf += ch
        }
      }
      stdin.on('data', onData)
    })
  } finally {
    stdin.setRawMode(false)
    stdin.pause()
  }
}

/** The password from --password-file, else asked on the terminal (twice when `confirm`). */
export async function getPassword(
  passwordFile: string | undefined,
  read: (f: string) => string,
  confirm: boolean
) {
  if (passwordFile !== undefined) return read(passwordFile)
  const pw = await promptPassword('keystore password: ')
  if (pw === '') throw new UsageError('an empty password is not allowed')
  if (confirm && (await promptPassword('repeat password: ')) !== pw)
    throw new UsageError('the passwords differ')
  return pw
}
