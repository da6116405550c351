package console

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"prismflow/pipeline"
	"prismflow/pipeline/topology"
	"prismflow/schemas"
)

// KafkaOperator is the Operator of a running pipeline: the same Kafka
// work as prismflow replay and prismflow deadletter, on the process's
// client.
type KafkaOperator struct {
	Client *kgo.Client
	Codec  *schemas.Codec
}

// Reprocess republishes doc's latest input record(s) of stage as a new
// run of the document.
func (o KafkaOperator) Reprocess(ctx context.Context, stage, doc string) ([]pipeline.Replayed, error) {
	topics, ok := topology.Inputs[stage]
	if !ok {
		return nil, fmt.Errorf("reprocess: unknown stage %q", stage)
	}
	return pipeline.Republish(ctx, o.Client, o.Codec, pipeline.ReplayQuery{Topics: topics, Documents: []string{doc}}, false)
}

// DeadLetters reads the whole dead-letter topic.
func (o KafkaOperator) DeadLetters(ctx context.Context) ([]pipeline.DeadLetterRecord, error) {
	return pipeline.ReadDeadLetters(ctx, o.Client, o.Codec, topology.DeadLetter)
}

// Redrive sends a dead letter's original record back to its topic.
func (o KafkaOperator) Redrive(ctx context.Context, d pipeline.DeadLetterRecord) error {
	return pipeline.Redrive(ctx, o.Client, d)
}
