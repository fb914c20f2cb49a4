// The network's own Kademlia DHT (apart from IPFS's public one): peer routing for nodes beyond the
// LAN, and provider records for adapter CIDs and datanet versions.
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'

export const DHT_PROTOCOL = '/openlora/kad/1.0.0'

/** The DHT key of a datanet version: a raw CID of `openlora/datanet/<id>/<version>`. */
export async function datanetVersionKey(datanetId: string, version: number): Promise<CID> {
  const bytes = new TextEncoder().encode(`openlora/datanet/${datanetId.toLowerCase()}/${version}`)
  return CID.createV1(raw.code, await sha256.digest(bytes))
}
