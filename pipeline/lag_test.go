package pipeline_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"prismflow/pipeline"
	"prismflow/pipeline/testenv"
	"prismflow/schemas/events"
)

func TestLagCollectorReportsUncommittedRecords(t *testing.T) {
	brokers := testenv.Kafka(t)
	ensureTopics(t, brokers, 2, "lag-in")
	var recs []*kgo.Record
	for i := 0; i < 5; i++ {
		recs = append(recs, eventRecord(t, "lag-in", "doc", events.DocumentReceived{Document: events.Document{ID: "doc"}}))
	}
	produce(t, brokers, recs...)

	// The group commits two of the five records of partition p.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	ends, err := adm.ListEndOffsets(ctx, "lag-in")
	if err != nil {
		t.Fatal(err)
	}
	var p int32 = -1
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset == 5 {
			p = o.Partition
		}
	})
	if p < 0 {
		t.Fatalf("the five records did not land on one partition: %v", ends)
	}
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "lag-in", Partition: p, At: 2})
	if _, err := adm.CommitOffsets(ctx, "prismflow-lagging", offs); err != nil {
		t.Fatal(err)
	}

	c := pipeline.NewLagCollector(adm, "lagging")
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	// Partition p: five records, two committed; the other: empty.
	want := `# HELP prismflow_stage_consumer_lag Records a stage's consumer group has yet to commit, per topic and partition.
# TYPE prismflow_stage_consumer_lag gauge
prismflow_stage_consumer_lag{partition="` + string(rune('0'+p)) + `",stage="lagging",topic="lag-in"} 3
prismflow_stage_consumer_lag{partition="` + string(rune('0'+1-p)) + `",stage="lagging",topic="lag-in"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "prismflow_stage_consumer_lag"); err != nil {
		t.Error(err)
	}
}
