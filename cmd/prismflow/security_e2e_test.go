package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"prismflow/pipeline"
	"prismflow/pipeline/config"
	"prismflow/pipeline/testenv"
)

// TestSASLEmbeddedBrokerAndSecretsNeverLogged runs the whole pipeline with
// the embedded broker requiring SCRAM-SHA-256, so that every Kafka client
// of the process (topics, registry, runtime, publisher, lag metrics) must
// authenticate for a document to reach done; at debug level, the password
// must appear nowhere in the process's output.
func TestSASLEmbeddedBrokerAndSecretsNeverLogged(t *testing.T) {
	shared := sharedDir(t)
	const user, password = "prismflow-ci", "Zq7-never-log-me-4f2c9a"
	p := startPrismflowWith(t, testenv.Postgres(t), "", "",
		"PRISMFLOW_KAFKA_SASL_MECHANISM=scram-sha-256",
		"PRISMFLOW_KAFKA_SASL_USERNAME="+user,
		"PRISMFLOW_KAFKA_SASL_PASSWORD="+password,
		"PRISMFLOW_LOG_LEVEL=debug",
	)
	id := p.upload(filepath.Join(shared, "corpus/real/004-pdflatex-4-pages/pdflatex-4-pages.pdf"))
	if d := p.waitFinished(2*time.Minute, id)[id]; d.Status != "done" {
		t.Errorf("status %q (%s), want done", d.Status, d.Error)
	}

	// The broker refuses a client without the password, or with another.
	for name, k := range map[string]config.Kafka{
		"no sasl":        {},
		"wrong password": {SASL: config.SASL{Mechanism: "scram-sha-256", Username: user, Password: "wrong"}},
	} {
		opts, err := pipeline.KafkaOpts(k)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(p.broker)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = kadm.NewClient(cl).ListTopics(ctx)
		cancel()
		cl.Close()
		if err == nil {
			t.Errorf("%s: the embedded broker accepted the client", name)
		}
	}

	p.stop()
	out, err := os.ReadFile(p.log.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "level=DEBUG") {
		t.Fatalf("the log has no debug lines; the check below would prove little:\n%s", tail(out, 2<<10))
	}
	if i := strings.Index(string(out), password); i >= 0 {
		t.Errorf("the SASL password appears in the log: %q", out[max(0, i-200):i+len(password)])
	}
}
