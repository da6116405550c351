package pipeline

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"prismflow/pipeline/config"
)

// KafkaOpts turns the kafka.sasl.* and kafka.tls.* settings into client
// options. Every Kafka client the binary makes (stage runtime, publisher,
// registry, lag collector, operator tools, inbox) takes them, so that one
// setting secures all connections and none is forgotten.
//
// Bad settings (an unknown mechanism, a missing user, an unreadable CA
// file) are reported here, at start, rather than as a dial failure later.
func KafkaOpts(c config.Kafka) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	switch mech := strings.ToLower(c.SASL.Mechanism); mech {
	case "", "none":
	case "plain", "scram-sha-256", "scram-sha-512":
		if c.SASL.Username == "" {
			return nil, fmt.Errorf("kafka sasl %s: kafka.sasl.username is empty", mech)
		}
		user, pass := c.SASL.Username, c.SASL.Password.Reveal()
		switch mech {
		case "plain":
			opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
		case "scram-sha-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
		default:
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
		}
	default:
		return nil, fmt.Errorf("kafka sasl: unknown mechanism %q (none, plain, scram-sha-256 or scram-sha-512)", c.SASL.Mechanism)
	}
	if c.TLS.On() {
		tc, err := kafkaTLS(c.TLS)
		if err != nil {
			return nil, err
		}
		// DialTLSConfig sets ServerName per broker from the address it
		// dials, which a shared tls.Config could not.
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	return opts, nil
}

func kafkaTLS(c config.TLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // opt-in, documented as tests only
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka tls: ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka tls: ca file %s: no PEM certificate in it", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" || c.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka tls: client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
