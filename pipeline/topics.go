package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// EnsureTopics creates the topics that do not exist yet with the given
// number of partitions and the broker's default replication factor. Topics
// that exist are left as they are (their partition count included), so it
// is safe to call at every start.
func EnsureTopics(ctx context.Context, adm *kadm.Client, partitions int32, topics ...string) error {
	if len(topics) == 0 {
		return nil
	}
	resps, err := adm.CreateTopics(ctx, partitions, -1, nil, topics...)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	var errs []error
	for _, r := range resps.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w (%s)", r.Topic, r.Err, r.ErrMessage))
		}
	}
	return errors.Join(errs...)
}
