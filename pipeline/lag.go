package pipeline

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
)

// LagCollector exports the consumer lag of stages' groups, per topic and
// partition, as prismflow_stage_consumer_lag. It asks the brokers at
// scrape time (kadm's Lag: end offsets minus committed offsets), so the
// figure is as fresh as the scrape and costs nothing between scrapes.
//
// Readers of transactional topics see a lag of one per partition at rest:
// the commit marker after the last record occupies an offset no consumer
// ever commits past. Alert on lag that grows, not on lag above zero.
type LagCollector struct {
	adm     *kadm.Client
	stages  []string
	timeout time.Duration
	desc    *prometheus.Desc
	errors  prometheus.Counter
}

// NewLagCollector returns a collector for the groups of the named stages.
func NewLagCollector(adm *kadm.Client, stages ...string) *LagCollector {
	return &LagCollector{
		adm:     adm,
		stages:  stages,
		timeout: 5 * time.Second,
		desc: prometheus.NewDesc("prismflow_stage_consumer_lag",
			"Records a stage's consumer group has yet to commit, per topic and partition.",
			[]string{"stage", "topic", "partition"}, nil),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "prismflow_stage_consumer_lag_errors_total",
			Help: "Scrapes whose consumer lag could not be read from the brokers.",
		}),
	}
}

// Describe implements prometheus.Collector.
func (c *LagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	c.errors.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *LagCollector) Collect(ch chan<- prometheus.Metric) {
	defer c.errors.Collect(ch)
	if len(c.stages) == 0 {
		return
	}
	groups := make([]string, len(c.stages))
	for i, s := range c.stages {
		groups[i] = Stage{Name: s}.Group()
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	lags, err := c.adm.Lag(ctx, groups...)
	if err != nil {
		c.errors.Inc()
		return
	}
	lags.Each(func(l kadm.DescribedGroupLag) {
		if l.Error() != nil {
			c.errors.Inc()
			return
		}
		stage := strings.TrimPrefix(l.Group, "prismflow-")
		for _, ml := range l.Lag.Sorted() {
			if ml.Err != nil {
				continue
			}
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(ml.Lag),
				stage, ml.Topic, strconv.Itoa(int(ml.Partition)))
		}
	})
}
