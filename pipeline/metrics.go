package pipeline

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the runtime's own series; franz-go's client series come
// from kprom, one set per stage client.
type metrics struct {
	consumed   *prometheus.CounterVec
	produced   *prometheus.CounterVec
	failed     *prometheus.CounterVec
	deadLetter *prometheus.CounterVec
	handle     *prometheus.HistogramVec
	inFlight   *prometheus.GaugeVec
	retries    *prometheus.CounterVec
}

// Failure kinds for prismflow_stage_events_failed_total.
const (
	kindTransient   = "transient"
	kindUnavailable = "unavailable"
	kindPermanent   = "permanent"
	kindBadRecord   = "bad_record"
	kindPanic       = "panic"
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "prismflow_stage_events_consumed_total",
			Help: "Records polled by a stage, per input topic.",
		}, []string{"stage", "topic"}),
		produced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "prismflow_stage_events_produced_total",
			Help: "Records a stage produced and committed, per output topic (dead letters included).",
		}, []string{"stage", "topic"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "prismflow_stage_events_failed_total",
			Help: "Failed handling attempts by kind: transient, permanent, bad_record, panic.",
		}, []string{"stage", "kind"}),
		deadLetter: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "prismflow_stage_dead_letters_total",
			Help: "Records a stage sent to the dead-letter topic.",
		}, []string{"stage"}),
		handle: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "prismflow_stage_handle_seconds",
			Help:    "Time spent in one handler attempt, decode and encode included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10), // 1ms .. ~4.4min
		}, []string{"stage"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "prismflow_stage_in_flight",
			Help: "Records a stage is handling right now.",
		}, []string{"stage"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "prismflow_stage_retries_total",
			Help: "Retries of transient failures.",
		}, []string{"stage"}),
	}
	m.consumed = register(reg, m.consumed)
	m.produced = register(reg, m.produced)
	m.failed = register(reg, m.failed)
	m.deadLetter = register(reg, m.deadLetter)
	m.handle = register(reg, m.handle)
	m.inFlight = register(reg, m.inFlight)
	m.retries = register(reg, m.retries)
	return m
}

// register adds c to reg, or reuses the collector already registered
// under the same name, so that two runtimes may share one registry.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A conflicting descriptor is a programming error; metrics then
		// still count but are not exported.
	}
	return c
}
