package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestDefaults(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != "localhost:8080" || c.Kafka.Partitions != 6 || !c.Embedded() || c.Reg.EmbeddedAddr != "localhost:8081" {
		t.Errorf("defaults = %+v", c)
	}
	if !filepath.IsAbs(c.DataDir) || !strings.HasPrefix(c.BlobURL(), "file://") {
		t.Errorf("data dir %q blob %q", c.DataDir, c.BlobURL())
	}
}

func TestPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "prismflow.yaml")
	yaml := "kafka:\n  brokers: [a:9092, b:9092]\n  partitions: 12\nhttp:\n  addr: 0.0.0.0:9000\nruntime:\n  retry_initial: 1s\n"
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PRISMFLOW_KAFKA_PARTITIONS", "3")
	t.Setenv("PRISMFLOW_POSTGRES_DSN", "postgres://db/x")
	t.Setenv("PRISMFLOW_STAGES", "extract, split")
	flags := pflag.NewFlagSet("run", pflag.ContinueOnError)
	flags.String("http-addr", "", "")
	if err := flags.Parse([]string{"--http-addr", "127.0.0.1:7000"}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(file, flags)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Kafka.Brokers, ","); got != "a:9092,b:9092" {
		t.Errorf("brokers from file = %q", got)
	}
	if c.Kafka.Partitions != 3 {
		t.Errorf("env should beat file: partitions = %d", c.Kafka.Partitions)
	}
	if c.HTTP.Addr != "127.0.0.1:7000" {
		t.Errorf("flag should beat file: http addr = %q", c.HTTP.Addr)
	}
	if c.PG.DSN != "postgres://db/x" || c.Stage.RetryInitial != time.Second {
		t.Errorf("dsn %q retry %v", c.PG.DSN, c.Stage.RetryInitial)
	}
	if strings.Join(c.Stages, "|") != "extract|split" {
		t.Errorf("stages = %q", c.Stages)
	}
}

func TestUnsetFlagDoesNotOverrideEnv(t *testing.T) {
	t.Setenv("PRISMFLOW_HTTP_ADDR", "127.0.0.1:1234")
	flags := pflag.NewFlagSet("run", pflag.ContinueOnError)
	flags.String("http-addr", "", "")
	c, err := Load("", flags)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != "127.0.0.1:1234" {
		t.Errorf("http addr = %q, want the environment's", c.HTTP.Addr)
	}
}

func TestValidation(t *testing.T) {
	t.Setenv("PRISMFLOW_KAFKA_PARTITIONS", "0")
	if _, err := Load("", nil); err == nil || !strings.Contains(err.Error(), "partitions") {
		t.Errorf("err = %v, want a partitions error", err)
	}
}

func TestReadmeDocumentsEveryOption(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range Options {
		if !strings.Contains(string(readme), o.Env()) {
			t.Errorf("README.md does not document %s (run bin/prismflow config)", o.Env())
		}
	}
}

func TestEmptyEnvTurnsAPIOff(t *testing.T) {
	t.Setenv("PRISMFLOW_HTTP_ADDR", "")
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != "" {
		t.Errorf("http addr = %q, want empty", c.HTTP.Addr)
	}
}
