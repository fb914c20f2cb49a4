export {
  type AdapterTier,
  LatencyTracker,
  type LocalState,
  type PeerDirectory,
  type PlanInput,
  planRoute,
  type RouteTarget,
  type RoutingPeer,
  whyNoRoute
} from './router.ts'
