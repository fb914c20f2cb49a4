// A connected TCP socket as a libp2p MultiaddrConnection, so a socket that the hole puncher opened
// itself (TCP simultaneous open) can be upgraded as the *inbound* side of a libp2p connection:
// libp2p's own dial path always upgrades as the initiator, and two initiators cannot agree
// (Noise needs a responder; yamux fails with "Both endpoints are clients").
import type { Socket } from 'node:net'
import type { AbortOptions, Logger } from '@libp2p/interface'
import { AbstractMultiaddrConnection, ipPortToMultiaddr } from '@libp2p/utils'

export class SocketConnection extends AbstractMultiaddrConnection {
  readonly #socket: Socket

  constructor(socket: Socket, log: Logger) {
    super({
      remoteAddr: ipPortToMultiaddr(socket.remoteAddress!, socket.remotePort!),
      direction: 'inbound',
      log,
      inactivityTimeout: 2 * 60 * 1_000
    })
    this.#socket = socket
    socket.on('data', (buf: Buffer) => this.onData(buf))
    socket.on('error', (err) => this.abort(err))
    socket.once('end', () => this.onTransportClosed())
    socket.once('close', (hadError) => {
      if (hadError) this.abort(new Error('TCP transmission error'))
      else this.onTransportClosed()
    })
    socket.on('drain', () => this.safeDispatchEvent('drain'))
  }

  sendData(data: Iterable<Uint8Array>): { sentBytes: number; canSendMore: boolean } {
    let sentBytes = 0
    let canSendMore = true
    for (const buf of data) {
      sentBytes += buf.byteLength
      canSendMore = this.#socket.write(buf)
      if (!canSendMore) break
    }
    return { sentBytes, canSendMore }
  }

  async sendClose(_options?: AbortOptions): Promise<void> {
    if (this.#socket.destroyed) return
    await new Promise<void>((resolve) => {
      this.#socket.once('close', () => resolve())
      this.#socket.destroySoon()
    })
  }

  sendReset(): void {
    if (this.#socket.writableEnded) this.#socket.destroy()
    else this.#socket.resetAndDestroy()
  }

  sendPause(): void {
    this.#socket.pause()
  }

  sendResume(): void {
    this.#socket.resume()
  }
}
