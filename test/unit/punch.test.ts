// The hole puncher dials only what a peer's punch message names: it must be an IPv4 address and a
// port, so a peer cannot point the node's dial at a host name, a path or a port out of range.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mappingFrom } from '../../src/protocols/punch/punch.ts'

test('a punch message names an IPv4 address and a port', () => {
  assert.equal(mappingFrom({ host: '11.11.0.10', port: 41109 }), { host: '11.11.0.10', port: 41109 })
  for (const bad of [
    { host: 'example.org', port: 80 },
    { host: '1.2.3.256', port: 80 },
    { host: '1.2.3', port: 80 },
    { host: '::1', port: 80 },
    { host: '1.2.3.4', port: 0 },
    { host: '1.2.3.4', port: 70_000 },
    { host: '1.2.3.4', port: '80' },
    { port: 80 }
  ])
    assert.throws(() => mappingFrom(bad as Record<string, unknown>), /punch message/)
})

test.run()
