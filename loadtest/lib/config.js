// @ts-check
/**
 * Where and how the scenarios send, from the environment (`k6 run -e NAME=value …` or exported variables):
 *   BASE_URL   the gateway (or the load balancer in front of a fleet)      default http://localhost:3000
 *   INSTANCE   the instance id in the webhook URL                          default "default"
 *   TOKEN      one of the instance's tokens (sent as ?token=)
 *   SECRET     the instance's webhookSecret: when set, requests are signed as Chatwoot 4.12+ signs them instead
 *   RATE       requests per second per replica (throughput, spike, soak)   default 1000
 *   REPLICAS   API replicas behind BASE_URL                                default 1
 *   CONVERSATIONS  new messages are spread over this many conversations   default 1000
 *   DURATION   how long the steady part runs                               default per scenario
 *   SUMMARY_DIR where handleSummary writes <scenario>-summary.{txt,json}   default the current directory
 */

/** @param {string} name @param {string} fallback @returns {string} */
export function env(name, fallback) {
  var value = __ENV[name]
  return value === undefined || value === '' ? fallback : value
}

/** @param {string} name @param {number} fallback @returns {number} */
export function envNumber(name, fallback) {
  var value = Number(env(name, String(fallback)))
  if (!(value > 0)) throw new Error(name + ' must be a positive number, not ' + JSON.stringify(__ENV[name]))
  return value
}

export var BASE_URL = env('BASE_URL', 'http://localhost:3000').replace(/\/+$/, '')
export var INSTANCE = env('INSTANCE', 'default')
export var TOKEN = env('TOKEN', '')
export var SECRET = env('SECRET', '')
/**
 * How many conversations new messages are spread over. An ordered route (the default) delivers a conversation's
 * messages one at a time: a thousand messages a second in one conversation measures that one lane, not the gateway.
 */
export var CONVERSATIONS = Math.round(envNumber('CONVERSATIONS', 1000))

/** The target arrival rate of the whole fleet: RATE per replica times REPLICAS. */
export var TARGET_RATE = Math.round(envNumber('RATE', 1000) * envNumber('REPLICAS', 1))

/** The SLO hookgate is held to, as k6 thresholds: p95 under 50 ms, under 0.1 % failed, over 99.9 % of checks passed. */
export var SLO_THRESHOLDS = {
  http_req_duration: ['p(95)<50'],
  http_req_failed: ['rate<0.001'],
  checks: ['rate>0.999'],
}

/**
 * A constant-arrival-rate scenario at TARGET_RATE for DURATION (or `defaultDuration`): an open model, so a slow
 * answer does not slow the arrivals and queueing shows in the latency. VUs for the rate at 100 ms per answer, more up
 * to 250 ms; past that k6 drops iterations (and says so).
 * @param {string} defaultDuration
 */
export function atTargetRate(defaultDuration) {
  return {
    executor: 'constant-arrival-rate',
    rate: TARGET_RATE,
    timeUnit: '1s',
    duration: env('DURATION', defaultDuration),
    preAllocatedVUs: Math.max(10, Math.ceil(TARGET_RATE / 10)),
    maxVUs: Math.max(50, Math.ceil(TARGET_RATE / 4)),
  }
}
