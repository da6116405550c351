package live

import "time"

// Document statuses an Update carries, as the persist stage names them.
const (
	StatusProcessing = "processing"
	StatusDone       = "done"
	StatusFailed     = "failed"
)

// Update says that a stage finished with a document.
type Update struct {
	Document string    `json:"document"`
	Tenant   string    `json:"tenant"`
	Stage    string    `json:"stage"`  // the stage that produced the event (for a dead letter: the stage that failed)
	Status   string    `json:"status"` // processing, done or failed
	Run      int32     `json:"run"`    // processing run of the document
	Error    string    `json:"error,omitempty"`
	At       time.Time `json:"at"` // when the stage produced the event
}
