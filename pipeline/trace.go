package pipeline

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// traceparentHeader is the W3C Trace Context header, carried as a Kafka
// record header so that any tracing system can follow a document.
const traceparentHeader = "traceparent"

// validTraceparent reports whether s is a well-formed version-00 W3C
// traceparent with non-zero ids: 00-<32 hex>-<16 hex>-<2 hex>.
func validTraceparent(s string) bool {
	parts := strings.Split(s, "-")
	if len(parts) != 4 || len(parts[0]) != 2 || len(parts[1]) != 32 || len(parts[2]) != 16 || len(parts[3]) != 2 {
		return false
	}
	if parts[0] == "ff" {
		return false
	}
	for _, p := range parts {
		if _, err := hex.DecodeString(p); err != nil || strings.ToLower(p) != p {
			return false
		}
	}
	return strings.Trim(parts[1], "0") != "" && strings.Trim(parts[2], "0") != ""
}

// newTraceparent starts a new sampled trace.
func newTraceparent() string {
	var id [24]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "00-" + hex.EncodeToString(id[:16]) + "-" + hex.EncodeToString(id[16:]) + "-01"
}
