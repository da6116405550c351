package llm

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus series of every Client that shares them.
type Metrics struct {
	calls     *prometheus.CounterVec
	tokens    *prometheus.CounterVec
	cost      *prometheus.CounterVec
	cacheHits *prometheus.CounterVec
	seconds   *prometheus.HistogramVec
}

// NewMetrics creates the llm series and registers them on reg (nil: not
// registered). Registering twice on one registry reuses the first
// collectors, so analyze and classify may each call it.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "prismflow_llm_calls_total",
			Help: "LLM completions by outcome: ok, cached, invalid (fell back), unavailable (breaker open), error.",
		}, []string{"provider", "model", "outcome"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "prismflow_llm_tokens_total",
			Help: "Tokens billed by LLM providers, by direction (input, output).",
		}, []string{"provider", "model", "direction"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "prismflow_llm_cost_usd_total",
			Help: "Estimated LLM cost in USD from the configured prices.",
		}, []string{"provider", "model"}),
		cacheHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "prismflow_llm_cache_hits_total",
			Help: "Completions served from the response cache.",
		}, []string{"provider"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "prismflow_llm_call_seconds",
			Help:    "Latency of LLM completions, retries and corrections included.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12),
		}, []string{"provider", "model"}),
	}
	if reg != nil {
		m.calls = register(reg, m.calls)
		m.tokens = register(reg, m.tokens)
		m.cost = register(reg, m.cost)
		m.cacheHits = register(reg, m.cacheHits)
		m.seconds = register(reg, m.seconds)
	}
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A conflicting descriptor is a programming error; the series
		// still count but are not exported.
	}
	return c
}

// record is nil-safe so that a Client without metrics needs no checks.
func (m *Metrics) record(provider, model, outcome string, r Response) {
	if m == nil {
		return
	}
	m.calls.WithLabelValues(provider, model, outcome).Inc()
	if r.Cached {
		m.cacheHits.WithLabelValues(provider).Inc()
		return
	}
	m.tokens.WithLabelValues(provider, model, "input").Add(float64(r.InputTokens))
	m.tokens.WithLabelValues(provider, model, "output").Add(float64(r.OutputTokens))
	m.cost.WithLabelValues(provider, model).Add(r.CostUSD)
	m.seconds.WithLabelValues(provider, model).Observe(r.Latency.Seconds())
}
