// Every CLI command, in the order `openlora --help` lists them. Add a command by adding its
// module here.
import type { Command } from '../command.ts'

export const commands: Command[] = []
