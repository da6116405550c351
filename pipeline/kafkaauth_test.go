package pipeline_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"prismflow/connectors/blob"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"prismflow/pipeline"
	"prismflow/pipeline/broker"
	"prismflow/pipeline/config"
	"prismflow/schemas/events"
)

// roundTrip runs a pass-through stage on brokers with opts on every
// client (topics, producer, runtime, consumer) and checks that an input
// record comes out transformed.
func roundTrip(t *testing.T, brokers []string, opts []kgo.Opt) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := pipeline.EnsureTopics(ctx, kadm.NewClient(cl), 1, "in", "out", "dead-letter"); err != nil {
		t.Fatalf("create topics: %v", err)
	}
	ev := events.TextExtracted{Document: events.Document{ID: "doc-1", Tenant: "t1"}, PageCount: 7}
	if err := cl.ProduceSync(ctx, eventRecord(t, "in", "doc-1", ev)).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	cfg := testConfig(brokers)
	cfg.ClientOpts = opts
	rt := pipeline.New(cfg, jsonCodec{}, blob.NewMemory(), nil, nil)
	runStages(t, rt, pipeline.Stage{Name: "pass", Version: "v1", Output: "out",
		Routes: []pipeline.Route{pipeline.Transform("in", passThrough)}})

	rd, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("out"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	for {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatal("no output record within 30s")
		}
		for _, fe := range fs.Errors() {
			t.Fatalf("consume %s: %v", fe.Topic, fe.Err)
		}
		if recs := fs.Records(); len(recs) > 0 {
			out := decode[events.SectionsSplit](t, recs[0])
			if out.Document.ID != "doc-1" || out.PageCount != 7 {
				t.Fatalf("output %+v, want doc-1 with page count 7", out)
			}
			return
		}
	}
}

func TestKafkaSASLAgainstEmbeddedBroker(t *testing.T) {
	for _, mech := range []string{"scram-sha-256", "scram-sha-512", "plain"} {
		t.Run(mech, func(t *testing.T) {
			const user, pass = "prismflow", "s3cret-Pa55"
			b, err := broker.Start(context.Background(), broker.Config{
				DataDir: t.TempDir(), Addr: "127.0.0.1:0",
				SASL: broker.SASL{Mechanism: mech, User: user, Password: pass},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()

			opts, err := pipeline.KafkaOpts(config.Kafka{SASL: config.SASL{Mechanism: mech, Username: user, Password: pass}})
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, b.Addrs(), opts)

			for name, k := range map[string]config.Kafka{
				"wrong password": {SASL: config.SASL{Mechanism: mech, Username: user, Password: "wrong"}},
				"unknown user":   {SASL: config.SASL{Mechanism: mech, Username: "nobody", Password: pass}},
				"no sasl":        {},
			} {
				opts, err := pipeline.KafkaOpts(k)
				if err != nil {
					t.Fatal(err)
				}
				err = listTopics(b.Addrs(), opts)
				switch {
				case err == nil:
					t.Errorf("%s: the broker accepted the client", name)
				case k.SASL.Mechanism != "" && !errors.Is(err, kerr.SaslAuthenticationFailed) && !errors.Is(err, io.EOF):
					// Kafka answers SASL_AUTHENTICATION_FAILED; kfake
					// closes the connection instead (EOF).
					t.Errorf("%s: error %v, want %v or EOF", name, err, kerr.SaslAuthenticationFailed)
				}
			}
		})
	}
}

// listTopics is a minimal authenticated request; a short deadline,
// because a client the broker refuses retries until its context ends.
func listTopics(brokers []string, opts []kgo.Opt) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = kadm.NewClient(cl).ListTopics(ctx)
	return err
}

func TestKafkaTLSWithSelfSignedCert(t *testing.T) {
	dir := t.TempDir()
	serverCert, caFile := selfSigned(t, dir)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()

	opts, err := pipeline.KafkaOpts(config.Kafka{TLS: config.TLS{CAFile: caFile}})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, brokers, opts)

	// The system pool does not trust the self-signed certificate, and a
	// plaintext client cannot talk to a TLS listener.
	untrusted, err := pipeline.KafkaOpts(config.Kafka{TLS: config.TLS{Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	var uerr x509.UnknownAuthorityError
	if err := listTopics(brokers, untrusted); !errors.As(err, &uerr) {
		t.Errorf("untrusted certificate: error %v, want x509.UnknownAuthorityError", err)
	}
	if err := listTopics(brokers, nil); err == nil {
		t.Error("plaintext client talked to the TLS listener")
	}
	skip, err := pipeline.KafkaOpts(config.Kafka{TLS: config.TLS{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := listTopics(brokers, skip); err != nil {
		t.Errorf("insecure_skip_verify: %v", err)
	}
}

// selfSigned makes a certificate for 127.0.0.1 and localhost that is its
// own CA, and writes it as PEM to dir/ca.pem.
func selfSigned(t *testing.T, dir string) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "prismflow test broker"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, caFile
}

func TestKafkaOptsRefusesBadSettings(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		k    config.Kafka
		want string
	}{
		{"unknown mechanism", config.Kafka{SASL: config.SASL{Mechanism: "gssapi", Username: "u"}}, "unknown mechanism"},
		{"no user", config.Kafka{SASL: config.SASL{Mechanism: "scram-sha-256", Password: "p"}}, "username is empty"},
		{"missing ca file", config.Kafka{TLS: config.TLS{CAFile: filepath.Join(dir, "missing.pem")}}, "ca file"},
		{"ca file without pem", config.Kafka{TLS: config.TLS{CAFile: notPEM}}, "no PEM certificate"},
		{"cert without key", config.Kafka{TLS: config.TLS{CertFile: notPEM}}, "client certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pipeline.KafkaOpts(tc.k)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
