// The page's one data hook: holds the page model, applies live changes by version (never backwards), and
// tells every widget the same version. First load: GET .../fatigue (compressed); then the SSE stream,
// resumed from that version (Last-Event-ID), brings changes, jumps and the gateway's status.
import { useEffect, useReducer } from 'react'
import { api, Change, GatewayStatus, PageModel, Problem } from './api'

export type Connection = 'connecting' | 'live' | 'reconnecting' | 'error'

export interface PageData {
  model: PageModel | null
  error: Problem | null
  connection: Connection
  gatewayDetail: string
  lastChangeAt: Date | null
  applied: number[] // every version this page applied, in order (tests count them)
}

type Action =
  | { type: 'model'; model: PageModel; live: boolean }
  | { type: 'change'; change: Change }
  | { type: 'status'; status: GatewayStatus }
  | { type: 'connection'; connection: Connection }
  | { type: 'error'; error: Problem }

const initial: PageData = {
  model: null,
  error: null,
  connection: 'connecting',
  gatewayDetail: '',
  lastChangeAt: null,
  applied: [],
}

function applyChange(model: PageModel, change: Change): PageModel {
  const ads = new Map(model.ads.map((ad) => [ad.ad_id, ad]))
  for (const id of change.removed) ads.delete(id)
  for (const ad of change.ads) ads.set(ad.ad_id, ad)
  const ordered = change.order.map((id) => ads.get(id)).filter((ad) => ad !== undefined)
  return {
    ...model,
    version: change.version,
    generated_at: change.generated_at,
    freshness: change.freshness,
    summary: change.summary,
    stored_days: change.stored_days ?? null,
    ads: ordered,
  }
}

function reducer(state: PageData, action: Action): PageData {
  switch (action.type) {
    case 'model': {
      const current = state.model
      if (current && action.model.version <= current.version) return state // never backwards
      return {
        ...state,
        model: action.model,
        error: null,
        lastChangeAt: action.live ? new Date() : state.lastChangeAt,
        applied: [...state.applied, action.model.version],
      }
    }
    case 'change': {
      const current = state.model
      if (!current || action.change.version <= current.version) return state
      if (action.change.from_version !== current.version) return state // not ours: a jump will follow
      return {
        ...state,
        model: applyChange(current, action.change),
        lastChangeAt: new Date(),
        applied: [...state.applied, action.change.version],
      }
    }
    case 'status':
      return {
        ...state,
        connection: action.status.gateway === 'live' ? 'live' : action.status.gateway === 'error' ? 'error' : 'reconnecting',
        gatewayDetail: action.status.detail,
      }
    case 'connection':
      return { ...state, connection: action.connection, gatewayDetail: action.connection === 'live' ? '' : state.gatewayDetail }
    case 'error':
      return { ...state, error: action.error, connection: 'error' }
  }
}

export function usePageData(act: string, since: string, until: string): PageData {
  const [state, dispatch] = useReducer(reducer, initial)

  useEffect(() => {
    let closed = false
    let source: EventSource | null = null
    let version = 0
    let reopen: number | undefined

    const open = () => {
      if (closed) return
      source = new EventSource(api.eventsUrl(act, since, until, version))
      const onModel = (live: boolean) => (e: MessageEvent) => {
        const model = JSON.parse(e.data) as PageModel
        version = Math.max(version, model.version)
        dispatch({ type: 'model', model, live })
      }
      source.addEventListener('snapshot', onModel(false))
      source.addEventListener('jump', onModel(true))
      source.addEventListener('change', (e: MessageEvent) => {
        const change = JSON.parse(e.data) as Change
        version = Math.max(version, change.version)
        dispatch({ type: 'change', change })
      })
      source.addEventListener('status', (e: MessageEvent) => {
        dispatch({ type: 'status', status: JSON.parse(e.data) as GatewayStatus })
      })
      source.onerror = () => {
        if (closed || !source) return
        dispatch({ type: 'connection', connection: 'reconnecting' })
        if (source.readyState === EventSource.CLOSED) {
          // the BFF answered with an error (or is down): open a new stream from our version shortly
          source = null
          reopen = window.setTimeout(open, 2000)
        }
      }
    }

    api
      .model(act, since, until)
      .then((model) => {
        if (closed) return
        version = model.version
        dispatch({ type: 'model', model, live: false })
        open()
      })
      .catch((error: unknown) => {
        if (!closed) dispatch({ type: 'error', error: error instanceof Problem ? error : new Problem(0, String(error)) })
      })
    return () => {
      closed = true
      window.clearTimeout(reopen)
      source?.close()
    }
  }, [act, since, until])

  return state
}
