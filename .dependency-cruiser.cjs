// The layering rule of src/ (docs/ARCHITECTURE.md "Layers"), checked by `npm run lint`:
//
//   node → gateway → client → protocols → serving → runtime | attribution | chain → crypto → metrics → common
//
// An import may point down or sideways inside its layer, never up, and never in a cycle. Nothing
// imports src/node/ (the composition root and CLI); the seam types every layer shares live in
// src/common/service.ts. Type-only imports count: a type from above is still a dependency on it.
// each layer and the folders it must not import (everything above it)
const above = {
  gateway: ['node'],
  client: ['node', 'gateway'],
  protocols: ['node', 'gateway', 'client'],
  serving: ['node', 'gateway', 'client', 'protocols'],
  runtime: ['node', 'gateway', 'client', 'protocols', 'serving', 'attribution', 'chain'],
  attribution: ['node', 'gateway', 'client', 'protocols', 'serving'],
  chain: ['node', 'gateway', 'client', 'protocols', 'serving', 'runtime', 'attribution'],
  crypto: ['node', 'gateway', 'client', 'protocols', 'serving', 'runtime', 'attribution', 'chain'],
  // the node's prom-client registry: every layer above may count into it, it knows none of them
  metrics: ['node', 'gateway', 'client', 'protocols', 'serving', 'runtime', 'attribution', 'chain', 'crypto'],
  common: [
    'node',
    'gateway',
    'client',
    'protocols',
    'serving',
    'runtime',
    'attribution',
    'chain',
    'crypto',
    'metrics'
  ]
}

const LIBP2P = '^node_modules/(libp2p|@libp2p|@chainsafe|@multiformats)/'

module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'an import cycle: move the shared part into a module both import',
      from: {},
      to: { circular: true }
    },
    {
      name: 'nothing-imports-node',
      severity: 'error',
      comment:
        'src/node/ is the composition root: put what others need in src/common/ (service.ts) or the layer that owns it',
      from: { path: '^src/', pathNot: '^src/node/' },
      to: { path: '^src/node/' }
    },
    ...Object.entries(above).map(([from, forbidden]) => ({
      name: `no-upward-import-from-${from}`,
      severity: 'error',
      comment: `src/${from}/ may not import the layers above it (${forbidden.join(', ')}): docs/ARCHITECTURE.md`,
      from: { path: `^src/${from}/` },
      to: { path: `^src/(${forbidden.join('|')})/` }
    })),
    {
      name: 'shared-protocol-plumbing-is-generic',
      severity: 'error',
      comment: 'src/protocols/shared/ serves every protocol, so it imports none of them',
      from: { path: '^src/protocols/shared/' },
      to: { path: '^src/protocols/', pathNot: '^src/protocols/shared/' }
    },
    {
      name: 'no-libp2p-below-protocols',
      severity: 'error',
      comment:
        'serving, runtime, attribution, chain and crypto run without a network host (the gateway and training use them too)',
      from: { path: '^src/(serving|runtime|attribution|chain|crypto)/' },
      to: { path: LIBP2P }
    },
    {
      name: 'common-knows-libp2p-types-only',
      severity: 'error',
      comment: 'src/common/ may name libp2p types (the node components) but not load libp2p',
      from: { path: '^src/common/' },
      to: { path: LIBP2P, dependencyTypesNot: ['type-only'] }
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'an import that resolves to nothing',
      from: {},
      to: { couldNotResolve: true }
    }
  ],
  options: {
    // TypeScript 7's compiler has no API dependency-cruiser can use; swc parses our sources
    parser: 'swc',
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    // the dashboard's browser modules (served as they are; ./vendor/ is mapped to node_modules at serve time)
    exclude: { path: '^src/gateway/ui/static/' },
    // libp2p packages publish ESM only, behind package.json exports
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'types', 'node', 'default']
    }
  }
}
