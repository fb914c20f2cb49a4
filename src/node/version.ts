import pkg from '../../package.json' with { type: 'json' }

/** Software version carried in adverts and printed by `openlora id`. */
export const NODE_VERSION: string = pkg.version
