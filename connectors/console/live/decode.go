package live

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"prismflow/pipeline"
	"prismflow/schemas"
)

// update reads the few fields an Update needs from r's value. It decodes
// with the writer's schema (the codec's generic form) rather than into
// each topic's event type, so any pipeline topic can be followed without
// a table of types here; the fields read (meta, document.id and
// document.tenant, and a dead letter's document_id, tenant and error) are
// common to every event schema. A record that does not decode is skipped:
// the stages dead-letter it, and the dead letter is what shows.
func (h *Hub) update(ctx context.Context, r *kgo.Record) (Update, bool) {
	rec, _, err := h.codec.Native(ctx, r.Value)
	if err != nil {
		// Bad bytes are the stages' to dead-letter; anything else (the
		// registry unreachable) loses an update the operator should hear of.
		level := slog.LevelWarn
		if errors.Is(err, schemas.ErrBadRecord) {
			level = slog.LevelDebug
		}
		h.log.Log(ctx, level, "live: skip undecodable record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
		return Update{}, false
	}
	u := Update{Status: StatusProcessing, At: r.Timestamp}
	if meta, ok := rec["meta"].(map[string]any); ok {
		u.Stage, _ = meta["stage"].(string)
		u.Run, _ = meta["run"].(int32)
		if at, ok := meta["produced_at"].(time.Time); ok && !at.IsZero() {
			u.At = at
		}
	}
	if u.Stage == "" {
		u.Stage = header(r, pipeline.HeaderStage)
	}
	u.Run = max(u.Run, 1)
	if r.Topic == h.deadLetter {
		u.Status = StatusFailed
		u.Document, _ = rec["document_id"].(string)
		u.Tenant, _ = rec["tenant"].(string)
		u.Error, _ = rec["error"].(string)
	} else if doc, ok := rec["document"].(map[string]any); ok {
		u.Document, _ = doc["id"].(string)
		u.Tenant, _ = doc["tenant"].(string)
	}
	if u.Document == "" {
		u.Document = string(r.Key)
	}
	if u.Document == "" {
		return Update{}, false
	}
	if r.Topic == h.final && h.status == nil {
		u.Status = StatusDone
	}
	u.At = u.At.UTC()
	return u, true
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
