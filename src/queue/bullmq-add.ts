import { Job, type JobsOptions, type Queue } from 'bullmq'
import { addStandardJob } from 'bullmq/dist/esm/scripts/addStandardJob-9.js'

/** BullMQ's add of one job, built but not sent: its script's 9 keys and 3 arguments. */
export interface JobAdd {
  keys: string[]
  args: (string | Buffer)[]
}

export const BULLMQ_KEYS = addStandardJob.keys
export const BULLMQ_ARGS = 3

/** BullMQ's own add script as a Lua function `bullmqAdd(KEYS, ARGV)`, for scripts that queue a job in their call. */
export const BULLMQ_ADD_FUNCTION = `local function bullmqAdd(KEYS, ARGV)
${addStandardJob.content}
end`

/** Lua: the first BULLMQ_KEYS keys of the call, as a table (the job's queue keys). */
export const BULLMQ_KEYS_LUA = `{ ${Array.from({ length: BULLMQ_KEYS }, (_, i) => `KEYS[${i + 1}]`).join(', ')} }`

/**
 * The add Queue.add would send for a job neither delayed nor prioritized (the queue's default options, then `opts`),
 * built by BullMQ itself on a stand-in client that keeps the command instead of sending it.
 */
export function jobAddOf<Data>(queue: Queue<Data>, name: string, data: Data, opts: JobsOptions & { jobId: string }): JobAdd {
  let sent: (string | Buffer)[] | undefined
  const keeper = {
    runCommand(_name: string, args: (string | Buffer)[]) {
      sent = args
      return Promise.resolve(opts.jobId)
    },
  }
  void new Job(queue, name, data, { ...queue.defaultJobOptions, ...opts }, opts.jobId).addJob(keeper as never)
  if (sent?.length !== BULLMQ_KEYS + BULLMQ_ARGS) throw new Error(`BullMQ ${name} add: expected its ${BULLMQ_KEYS} keys and ${BULLMQ_ARGS} args`)
  return { keys: sent.slice(0, BULLMQ_KEYS) as string[], args: sent.slice(BULLMQ_KEYS) }
}

/** Calls a script made by withJobAdd: the job's keys and arguments first, then the script's own. */
export function callWithJobAdd<Answer>(
  command: (numberOfKeys: number) => (...keysAndArgs: (string | number | Buffer)[]) => Promise<Answer>,
  add: JobAdd,
  keys: string[],
  args: (string | number)[],
): Promise<Answer> {
  return command(add.keys.length + keys.length)(...add.keys, ...keys, ...add.args, ...args)
}

/**
 * A script that runs `script` and then, in the same call, BullMQ's own add script when `tail` calls `addJob()`: one
 * round trip (and, with AOF fsync always, one fsync) where a lock and then the job took two. `script` runs on its own
 * KEYS and ARGV (given after the job's, see callWithJobAdd), ending with a `return`; `tail` is Lua that reads its
 * answer as `result` and returns what the call answers.
 */
export function withJobAdd(script: string, tail: string): string {
  return `
${BULLMQ_ADD_FUNCTION}
local function own(KEYS, ARGV)
${script}
end
local ownKeys, ownArgs = {}, {}
for i = ${BULLMQ_KEYS + 1}, #KEYS do ownKeys[#ownKeys + 1] = KEYS[i] end
for i = ${BULLMQ_ARGS + 1}, #ARGV do ownArgs[#ownArgs + 1] = ARGV[i] end
local result = own(ownKeys, ownArgs)
local function addJob()
  return bullmqAdd(${BULLMQ_KEYS_LUA}, { ARGV[1], ARGV[2], ARGV[3] })
end
${tail}
`
}
