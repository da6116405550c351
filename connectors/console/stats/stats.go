package stats

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"prismflow/pipeline"
	"prismflow/pipeline/topology"
)

// MinInterval is the shortest time between two samples a throughput is
// computed over.
const MinInterval = time.Second

// StageStats is one stage's row.
type StageStats struct {
	Stage string `json:"stage"`
	// PerSecond is the input records (and transaction markers) the stage
	// committed per second since the previous sample; 0 at the first.
	PerSecond float64 `json:"per_second"`
	// InFlight is the records this process's instance of the stage is
	// handling right now.
	InFlight float64 `json:"in_flight"`
	// Lag is the records of its input topics the stage's group has yet to
	// commit, over all partitions.
	Lag int64 `json:"lag"`
	// DeadLetters is the records the stage sent to the dead-letter topic
	// (all the topic retains).
	DeadLetters int64 `json:"dead_letters"`
	// Members is the consumer group's running instances; State is the
	// group's state (Stable, Empty, Dead, ...), "" when it never ran.
	Members int    `json:"members"`
	State   string `json:"state"`
}

// Option configures a Collector.
type Option func(*Collector)

// WithStages sets the stages shown, in order, and each one's input
// topics. Default: topology.Names and topology.Inputs.
func WithStages(names []string, inputs map[string][]string) Option {
	return func(c *Collector) { c.names, c.inputs = names, inputs }
}

// WithDeadLetterTopic names the dead-letter topic. Default:
// topology.DeadLetter.
func WithDeadLetterTopic(t string) Option { return func(c *Collector) { c.deadLetter = t } }

// WithLogger sets the logger. Default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *Collector) { c.log = l } }

// Collector samples the stages' figures. It is safe for concurrent use.
type Collector struct {
	base       *kgo.Client
	adm        *kadm.Client
	gatherer   prometheus.Gatherer
	names      []string
	inputs     map[string][]string
	deadLetter string
	log        *slog.Logger

	mu    sync.Mutex
	prev  map[string]sample  // per stage, the sample its rate was last computed from
	rates map[string]float64 // per stage, the rate last computed

	dead *deadLetterCounter
}

// sample is the sum of a stage's committed offsets at a time.
type sample struct {
	at        time.Time
	committed int64
}

// New returns a collector asking the cluster through cl (its connection
// settings also serve the dead-letter consumer, which must therefore not
// be a group client's) and reading in-flight gauges from gatherer (nil:
// none). Close it to stop the dead-letter consumer.
func New(cl *kgo.Client, gatherer prometheus.Gatherer, opts ...Option) *Collector {
	c := &Collector{
		base:       cl,
		adm:        kadm.NewClient(cl),
		gatherer:   gatherer,
		names:      topology.Names,
		inputs:     topology.Inputs,
		deadLetter: topology.DeadLetter,
		log:        slog.Default(),
		prev:       map[string]sample{},
		rates:      map[string]float64{},
	}
	for _, o := range opts {
		o(c)
	}
	c.dead = newDeadLetterCounter(cl, c.deadLetter, c.log)
	return c
}

// Close stops the dead-letter consumer and waits for it.
func (c *Collector) Close() { c.dead.close() }

// Collect returns a row per stage, in stage order. An error means the
// cluster could not be asked; the in-flight figures are returned with it.
func (c *Collector) Collect(ctx context.Context) ([]StageStats, error) {
	c.dead.start()
	out := make([]StageStats, len(c.names))
	for i, n := range c.names {
		out[i] = StageStats{Stage: n}
	}
	inFlight, ierr := c.inFlight()
	dead := c.dead.counts()
	for i := range out {
		out[i].InFlight = inFlight[out[i].Stage]
		out[i].DeadLetters = dead[out[i].Stage]
	}
	if ierr != nil {
		c.log.WarnContext(ctx, "stats: gather in-flight gauges", "err", ierr)
	}

	groups := make([]string, len(c.names))
	for i, n := range c.names {
		groups[i] = pipeline.Stage{Name: n}.Group()
	}
	lags, err := c.adm.Lag(ctx, groups...)
	if err != nil {
		return out, fmt.Errorf("stats: consumer lag: %w", err)
	}
	now := time.Now()
	committed := map[string]int64{}
	for i, n := range c.names {
		l, ok := lags[groups[i]]
		if !ok {
			continue
		}
		if err := l.Error(); err != nil {
			c.log.DebugContext(ctx, "stats: group", "group", l.Group, "err", err)
			continue
		}
		if l.State != "Dead" {
			out[i].State = l.State
		}
		out[i].Members = len(l.Members)
		for _, ml := range l.Lag.Sorted() {
			if !slices.Contains(c.inputs[n], ml.Topic) || ml.Err != nil {
				continue
			}
			out[i].Lag += max(ml.Lag, 0)
			if ml.Commit.At >= 0 {
				committed[n] += ml.Commit.At
			}
		}
	}
	rates := c.rate(now, committed)
	for i := range out {
		out[i].PerSecond = rates[out[i].Stage]
	}
	return out, nil
}

// rate turns the growth of each stage's committed offsets since its
// previous sample into records per second. Samples are kept per stage, so
// a group that could not be read this time is measured against its last
// reading later, not against zero.
func (c *Collector) rate(now time.Time, committed map[string]int64) map[string]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]float64, len(committed))
	for n, off := range committed {
		p, ok := c.prev[n]
		if !ok {
			c.prev[n] = sample{now, off}
			continue
		}
		if now.Sub(p.at) < MinInterval {
			out[n] = c.rates[n]
			continue
		}
		// Offsets only grow, unless an operator reset the group
		// (pipeline.ResetOffsets): then there is no rate to tell.
		r := 0.0
		if d := off - p.committed; d > 0 {
			r = float64(d) / now.Sub(p.at).Seconds()
		}
		c.prev[n], c.rates[n], out[n] = sample{now, off}, r, r
	}
	return out
}

// inFlight reads the prismflow_stage_in_flight gauges per stage.
func (c *Collector) inFlight() (map[string]float64, error) {
	out := map[string]float64{}
	if c.gatherer == nil {
		return out, nil
	}
	mfs, err := c.gatherer.Gather()
	// Gather returns what it could gather along with an error.
	for _, mf := range mfs {
		if mf.GetName() != "prismflow_stage_in_flight" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "stage" {
					out[lp.GetValue()] += m.GetGauge().GetValue()
				}
			}
		}
	}
	return out, err
}
