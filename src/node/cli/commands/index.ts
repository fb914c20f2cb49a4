// Every CLI command, in the order `openlora --help` lists them. Add a command by adding its
// module here.
import type { Command } from '../command.ts'
import { adapterCommands } from './adapter.ts'
import { balanceCommand } from './balance.ts'
import { chainCommands } from './chain.ts'
import { configCommands } from './config.ts'
import { datanetCommands } from './datanet.ts'
import { dbCommands } from './db.ts'
import { depositCommand } from './deposit.ts'
import { gatewayCommands } from './gateway.ts'
import { generateCommand } from './generate.ts'
import { idCommand } from './id.ts'
import { inferCommand } from './infer.ts'
import { keysCommands } from './keys.ts'
import { peersCommand } from './peers.ts'
import { rewardsCommand } from './rewards.ts'
import { checkReceiptCommand, withdrawContributionCommand } from './rewards-contribution.ts'
import { startCommand } from './start.ts'
import { trainCommand } from './train.ts'
import { verifyCommand } from './verify.ts'

export const commands: Command[] = [
  startCommand,
  idCommand,
  ...configCommands,
  ...keysCommands,
  ...dbCommands,
  peersCommand,
  ...datanetCommands,
  generateCommand,
  trainCommand,
  inferCommand,
  ...gatewayCommands,
  verifyCommand,
  ...adapterCommands,
  depositCommand,
  balanceCommand,
  rewardsCommand,
  withdrawContributionCommand,
  checkReceiptCommand,
  ...chainCommands
]
