package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestKafkaSecurityFromEnvironment(t *testing.T) {
	const password = "pw-4b1d-never-printed"
	t.Setenv("PRISMFLOW_KAFKA_SASL_MECHANISM", "scram-sha-512")
	t.Setenv("PRISMFLOW_KAFKA_SASL_USERNAME", "svc")
	t.Setenv("PRISMFLOW_KAFKA_SASL_PASSWORD", password)
	t.Setenv("PRISMFLOW_KAFKA_TLS_CA_FILE", "/etc/kafka/ca.pem")
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	k := c.Kafka
	if k.SASL.Mechanism != "scram-sha-512" || k.SASL.Username != "svc" || k.SASL.Password.Reveal() != password {
		t.Errorf("sasl = %+v (password %q)", k.SASL, k.SASL.Password.Reveal())
	}
	if !k.TLS.On() || k.TLS.CAFile != "/etc/kafka/ca.pem" {
		t.Errorf("tls = %+v, want on with the CA file", k.TLS)
	}

	// However the configuration is printed, the password is not.
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "kafka", k, "sasl", k.SASL, "password", k.SASL.Password)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "kafka", k, "password", k.SASL.Password)
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{
		"%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", c), "%#v": fmt.Sprintf("%#v", c),
		"json": string(js), "slog": logged.String(),
	} {
		if strings.Contains(s, password) {
			t.Errorf("%s prints the SASL password", name)
		}
	}
}

func TestKafkaSecurityValidation(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"PRISMFLOW_KAFKA_SASL_MECHANISM": "gssapi"}, "kafka.sasl.mechanism"},
		{map[string]string{"PRISMFLOW_KAFKA_TLS_CERT_FILE": "/c.pem"}, "kafka.tls.cert_file"},
		{map[string]string{"PRISMFLOW_KAFKA_TLS_KEY_FILE": "/k.pem"}, "kafka.tls.cert_file"},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		if _, err := Load("", nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want one naming %s", tc.env, err, tc.want)
		}
		for k := range tc.env {
			t.Setenv(k, "")
		}
	}
}
