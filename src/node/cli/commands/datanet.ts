// `openlora datanet create|contribute|publish|show`: datanets held in this node's data directory.
import { type Command, requireString } from '../../cli/command.ts'
import { loadIdentity } from '../../identity.ts'
import { datanetChainCommands } from './datanet-chain.ts'
import { datanetFetchCommand } from './datanet-fetch.ts'
import { datanetProofCommands } from './datanet-proof.ts'
import { openDatanetStore, print } from './datanet-shared.ts'
import { configFromFlags, configOptions } from './shared.ts'

const json = { type: 'boolean', description: 'print JSON' } as const
const datanetOpt = { type: 'string', description: 'datanet id (0x…)', valueName: 'ID' } as const

async function withStore<T>(
  values: Record<string, unknown>,
  fn: (s: Awaited<ReturnType<typeof openDatanetStore>>) => Promise<T>
) {
  const s = await openDatanetStore(configFromFlags(values as never))
  try {
    return await fn(s)
  } finally {
    await s.close()
  }
}

const create: Command = {
  name: 'datanet create',
  summary: 'create a datanet (prints its id)',
  options: {
    ...configOptions,
    name: { type: 'string', description: 'datanet name (1-128 characters)', valueName: 'NAME' },
    owner: {
      type: 'string',
      description: "owner address (default: this node's operator address)",
      valueName: 'ADDR'
    },
    description: { type: 'string', description: 'what the data is', valueName: 'TEXT' },
    tag: { type: 'string', multiple: true, description: 'a tag', valueName: 'TAG' },
    json
  },
  async run({ values }) {
    const name = requireString(values, 'name')
    return withStore(values, async ({ store, config, log }) => {
      const owner =
        typeof values.owner === 'string'
          ? values.owner
          : (await loadIdentity(`${config.dataDir}/keys`, log)).operator.address
      const dn = await store.createDatanet({
        name,
        owner,
        description: values.description as string | undefined,
        tags: values.tag as string[] | undefined
      })
      print(values.json === true, dn, () => `datanet ${dn.id}\nname     ${dn.name}\nowner    ${dn.owner}`)
      return 0
    })
  }
}

const contribute: Command = {
  name: 'datanet contribute',
  summary: 'add a .txt/.md file (or each row of a .jsonl file) as contributions to the next version',
  options: {
    ...configOptions,
    datanet: datanetOpt,
    file: { type: 'string', description: 'the file to contribute', valueName: 'FILE' },
    contributor: {
      type: 'string',
      description: "contributor's address (receives rewards)",
      valueName: 'ADDR'
    },
    json
  },
  async run({ values }) {
    const id = requireString(values, 'datanet')
    const file = requireString(values, 'file')
    const contributor = requireString(values, 'contributor')
    return withStore(values, async ({ store }) => {
      const recs = await store.contributeFile(id, file, contributor)
      const out = recs.map((r) => ({
        seq: r.seq,
        cid: r.cid,
        contributor: r.contributor,
        bytes: r.bytes,
        chunks: r.chunks.length,
        source: r.source
      }))
      print(values.json === true, out, () =>
        out.map((r) => `#${r.seq} ${r.cid} ${r.bytes} B in ${r.chunks} chunks (${r.source})`).join('\n')
      )
      return 0
    })
  }
}

const publish: Command = {
  name: 'datanet publish',
  summary: 'publish the contributions so far as the next version; prints the Merkle root to record on-chain',
  options: { ...configOptions, datanet: datanetOpt, json },
  async run({ values }) {
    const id = requireString(values, 'datanet')
    return withStore(values, async ({ store }) => {
      const v = await store.publish(id)
      print(
        values.json === true,
        v,
        () =>
          `datanet ${v.datanetId}\nversion  ${v.version}\nroot     ${v.root}\ncount    ${v.count} contributions`
      )
      return 0
    })
  }
}

const show: Command = {
  name: 'datanet show',
  summary: 'list datanets, or show one with its versions and contributions',
  options: {
    ...configOptions,
    datanet: datanetOpt,
    contributions: { type: 'boolean', description: 'list every contribution' },
    json
  },
  async run({ values }) {
    return withStore(values, async ({ store }) => {
      if (typeof values.datanet !== 'string') {
        const all = await store.listDatanets()
        print(values.json === true, all, () =>
          all.length === 0
            ? 'no datanets'
            : all
                .map((d) => `${d.id}  ${d.name}  v${d.latestVersion}  ${d.contributions} contributions`)
                .join('\n')
        )
        return 0
      }
      const dn = await store.getDatanet(values.datanet)
      const versions = await store.versions(dn.id)
      const contributions = values.contributions === true ? await store.contributions(dn.id) : undefined
      print(values.json === true, { ...dn, versions, contributionList: contributions }, () =>
        [
          `datanet      ${dn.id}`,
          `name         ${dn.name}`,
          `description  ${dn.description}`,
          `tags         ${dn.tags.join(', ')}`,
          `owner        ${dn.owner}`,
          `created      ${new Date(dn.createdAt).toISOString()}`,
          `contributions ${dn.contributions}`,
          ...versions.map(
            (v) =>
              `v${v.version}  ${v.root}  ${v.count} contributions  ${new Date(v.publishedAt).toISOString()}`
          ),
          ...(contributions ?? []).map((c) => `#${c.seq} ${c.cid} by ${c.contributor} (${c.source})`)
        ].join('\n')
      )
      return 0
    })
  }
}

export const datanetCommands: Command[] = [
  create,
  contribute,
  publish,
  show,
  datanetFetchCommand,
  ...datanetChainCommands,
  ...datanetProofCommands
]
