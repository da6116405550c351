package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
)

func newCluster(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// start runs a registry on brokers and returns it with its HTTP URL. The
// registry is closed at the end of the test unless the caller closes it.
func start(t *testing.T, brokers []string) (*Registry, string) {
	t.Helper()
	reg, err := New(testCtx(t), Config{Brokers: brokers}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(reg.Handler())
	var once sync.Once
	t.Cleanup(func() { srv.Close(); once.Do(reg.Close) })
	return reg, srv.URL
}

func client(t *testing.T, url string) *sr.Client {
	t.Helper()
	cl, err := sr.NewClient(sr.URLs(url))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

const v1 = `{"type":"record","name":"Thing","namespace":"t","fields":[
	{"name":"id","type":"string"},
	{"name":"kind","type":{"type":"enum","name":"Kind","symbols":["a","b"]}}]}`

// v2 adds a field with a default: BACKWARD compatible with v1.
const v2 = `{"type":"record","name":"Thing","namespace":"t","fields":[
	{"name":"id","type":"string"},
	{"name":"kind","type":{"type":"enum","name":"Kind","symbols":["a","b"]}},
	{"name":"size","type":"long","default":0}]}`

// v3 adds a field without a default: not BACKWARD compatible.
const v3 = `{"type":"record","name":"Thing","namespace":"t","fields":[
	{"name":"id","type":"string"},
	{"name":"kind","type":{"type":"enum","name":"Kind","symbols":["a","b"]}},
	{"name":"owner","type":"string"}]}`

func avro(s string) sr.Schema { return sr.Schema{Schema: s, Type: sr.TypeAvro} }

func wantCode(t *testing.T, err error, code int) {
	t.Helper()
	var re *sr.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want registry error %d, got %v", code, err)
	}
	if re.ErrorCode != code {
		t.Fatalf("want error code %d, got %d (%s)", code, re.ErrorCode, re.Message)
	}
}

func TestRegistryWithSRClient(t *testing.T) {
	ctx := testCtx(t)
	_, url := start(t, newCluster(t))
	cl := client(t, url)

	id1, err := cl.RegisterSchema(ctx, "things-value", avro(v1), -1, -1)
	if err != nil {
		t.Fatalf("register v1: %v", err)
	}
	// Re-indented text is the same schema: same id, no new version.
	again, err := cl.RegisterSchema(ctx, "things-value", avro(strings.ReplaceAll(v1, "\n\t", " ")), -1, -1)
	if err != nil || again != id1 {
		t.Fatalf("re-register v1: id %d err %v, want %d", again, err, id1)
	}
	// The same schema under another subject keeps its global id.
	other, err := cl.CreateSchema(ctx, "other-value", avro(v1))
	if err != nil || other.ID != id1 || other.Version != 1 || other.Subject != "other-value" {
		t.Fatalf("create under other subject: %+v %v, want id %d version 1", other, err, id1)
	}

	ss, err := cl.CreateSchema(ctx, "things-value", avro(v2))
	if err != nil {
		t.Fatalf("register compatible v2: %v", err)
	}
	if ss.ID == id1 || ss.Version != 2 {
		t.Fatalf("v2 got %+v, want a new id at version 2", ss)
	}

	_, err = cl.RegisterSchema(ctx, "things-value", avro(v3), -1, -1)
	wantCode(t, err, 409)
	var re *sr.ResponseError
	if errors.As(err, &re) && re.StatusCode != http.StatusConflict {
		t.Fatalf("incompatible schema: HTTP %d, want 409", re.StatusCode)
	}
	res, err := cl.CheckCompatibility(ctx, "things-value", -1, avro(v3))
	if err != nil || res.Is || len(res.Messages) == 0 {
		t.Fatalf("check v3: %+v %v, want incompatible with reasons", res, err)
	}
	res, err = cl.CheckCompatibility(ctx, "things-value", 1, avro(v2))
	if err != nil || !res.Is {
		t.Fatalf("check v2 against 1: %+v %v, want compatible", res, err)
	}

	got, err := cl.LookupSchema(ctx, "things-value", avro(v2))
	if err != nil || got.ID != ss.ID || got.Version != 2 {
		t.Fatalf("lookup v2: %+v %v", got, err)
	}
	_, err = cl.LookupSchema(ctx, "things-value", avro(v3))
	wantCode(t, err, 40403)

	byID, err := cl.SchemaByID(ctx, ss.ID)
	if err != nil || byID.Schema != v2 {
		t.Fatalf("schema by id: %q %v", byID.Schema, err)
	}
	text, err := cl.SchemaTextByID(ctx, id1)
	if err != nil || text != v1 {
		t.Fatalf("schema text by id: %q %v", text, err)
	}
	_, err = cl.SchemaByID(ctx, 999)
	wantCode(t, err, 40403)

	versions, err := cl.SubjectVersions(ctx, "things-value")
	if err != nil || !slices.Equal(versions, []int{1, 2}) {
		t.Fatalf("versions: %v %v", versions, err)
	}
	latest, err := cl.SchemaByVersion(ctx, "things-value", -1)
	if err != nil || latest.Version != 2 || latest.ID != ss.ID {
		t.Fatalf("latest: %+v %v", latest, err)
	}
	usages, err := cl.SchemaVersionsByID(ctx, id1)
	wantUsages := []sr.SubjectVersion{{Subject: "other-value", Version: 1}, {Subject: "things-value", Version: 1}}
	if err != nil || !slices.Equal(usages, wantUsages) {
		t.Fatalf("usages of %d: %v %v, want %v", id1, usages, err, wantUsages)
	}
	subjects, err := cl.Subjects(ctx)
	if err != nil || !slices.Equal(subjects, []string{"other-value", "things-value"}) {
		t.Fatalf("subjects: %v %v", subjects, err)
	}

	// Relaxing the subject's level lets the incompatible schema in.
	if r := cl.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatNone}, "things-value"); r[0].Err != nil {
		t.Fatalf("set compatibility: %v", r[0].Err)
	}
	if r := cl.Compatibility(ctx, "things-value"); r[0].Err != nil || r[0].Level != sr.CompatNone {
		t.Fatalf("subject compatibility: %+v", r[0])
	}
	if r := cl.Compatibility(ctx); r[0].Err != nil || r[0].Level != sr.CompatBackward {
		t.Fatalf("global compatibility: %+v", r[0])
	}
	if _, err := cl.RegisterSchema(ctx, "things-value", avro(v3), -1, -1); err != nil {
		t.Fatalf("register v3 at NONE: %v", err)
	}

	deleted, err := cl.DeleteSubject(ctx, "other-value", sr.SoftDelete)
	if err != nil || !slices.Equal(deleted, []int{1}) {
		t.Fatalf("delete: %v %v", deleted, err)
	}
	_, err = cl.SubjectVersions(ctx, "other-value")
	wantCode(t, err, 40401)
	subjects, _ = cl.Subjects(ctx)
	if !slices.Equal(subjects, []string{"things-value"}) {
		t.Fatalf("subjects after delete: %v", subjects)
	}
}

func TestCompatibilityLevels(t *testing.T) {
	// v2 drops nothing and adds a defaulted field: readable both ways.
	// vDrop removes "kind": new readers are fine, old readers lack a
	// default for kind, so FORWARD refuses it.
	const vDrop = `{"type":"record","name":"Thing","namespace":"t","fields":[{"name":"id","type":"string"}]}`
	tests := []struct {
		level  sr.CompatibilityLevel
		schema string
		ok     bool
	}{
		{sr.CompatBackward, v2, true},
		{sr.CompatBackward, v3, false},
		{sr.CompatBackward, vDrop, true},
		{sr.CompatForward, vDrop, false},
		{sr.CompatForward, v3, true},
		{sr.CompatFull, v2, true},
		{sr.CompatFull, v3, false},
		{sr.CompatNone, `{"type":"record","name":"Other","fields":[{"name":"x","type":"int"}]}`, true},
	}
	ctx := testCtx(t)
	_, url := start(t, newCluster(t))
	cl := client(t, url)
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.level, i), func(t *testing.T) {
			subject := fmt.Sprintf("level-%d", i)
			if _, err := cl.RegisterSchema(ctx, subject, avro(v1), -1, -1); err != nil {
				t.Fatal(err)
			}
			if r := cl.SetCompatibility(ctx, sr.SetCompatibility{Level: tt.level}, subject); r[0].Err != nil {
				t.Fatal(r[0].Err)
			}
			_, err := cl.RegisterSchema(ctx, subject, avro(tt.schema), -1, -1)
			if tt.ok && err != nil {
				t.Fatalf("want accepted, got %v", err)
			}
			if !tt.ok {
				wantCode(t, err, 409)
			}
		})
	}
}

func TestTransitive(t *testing.T) {
	ctx := testCtx(t)
	_, url := start(t, newCluster(t))
	cl := client(t, url)
	// a → b drops field x (defaulted in a), b → c adds x back without a
	// default and as another type: c reads b, but c cannot read a.
	a := `{"type":"record","name":"R","fields":[{"name":"k","type":"string"},{"name":"x","type":"string","default":""}]}`
	b := `{"type":"record","name":"R","fields":[{"name":"k","type":"string"}]}`
	c := `{"type":"record","name":"R","fields":[{"name":"k","type":"string"},{"name":"x","type":"int","default":0}]}`
	for _, s := range []string{a, b} {
		if _, err := cl.RegisterSchema(ctx, "tr", avro(s), -1, -1); err != nil {
			t.Fatal(err)
		}
	}
	res, err := cl.CheckCompatibility(ctx, "tr", -1, avro(c))
	if err != nil || !res.Is {
		t.Fatalf("c against latest: %+v %v, want compatible", res, err)
	}
	cl.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatBackwardTransitive}, "tr")
	_, err = cl.RegisterSchema(ctx, "tr", avro(c), -1, -1)
	wantCode(t, err, 409)
}

func TestHTTPShapes(t *testing.T) {
	_, url := start(t, newCluster(t))
	do := func(method, path, body string) (int, string, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if ct := resp.Header.Get("Content-Type"); ct != contentType {
			t.Errorf("%s %s: content type %q", method, path, ct)
		}
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, strings.TrimSpace(string(b)), m
	}
	body, _ := json.Marshal(map[string]string{"schema": v1})

	tests := []struct {
		method, path, body string
		status             int
		code               float64 // error_code, 0 for success
		want               string  // exact body, if set
	}{
		{"GET", "/schemas/types", "", 200, 0, `["AVRO"]`},
		{"GET", "/subjects", "", 200, 0, `[]`},
		{"GET", "/subjects/nope/versions", "", 404, 40401, ""},
		{"POST", "/subjects/s-value/versions", string(body), 200, 0, `{"id":1}`},
		{"POST", "/subjects/s-value/versions", `{"schema":"{\"type\":\"record\"}"}`, 422, 42201, ""},
		{"POST", "/subjects/s-value/versions", `{"schema":"{}","schemaType":"PROTOBUF"}`, 422, 42201, ""},
		{"GET", "/subjects/s-value/versions", "", 200, 0, `[1]`},
		{"GET", "/subjects/s-value/versions/7", "", 404, 40402, ""},
		{"GET", "/subjects/s-value/versions/x", "", 422, 42202, ""},
		{"GET", "/subjects/s-value/versions/latest/schema", "", 200, 0, v1},
		{"GET", "/schemas/ids/1/versions", "", 200, 0, `[{"subject":"s-value","version":1}]`},
		{"GET", "/schemas/ids/2", "", 404, 40403, ""},
		{"POST", "/subjects/s-value", `{"schema":"\"string\""}`, 404, 40403, ""},
		{"GET", "/config", "", 200, 0, `{"compatibilityLevel":"BACKWARD"}`},
		{"PUT", "/config", `{"compatibility":"FULL"}`, 200, 0, `{"compatibility":"FULL"}`},
		{"PUT", "/config", `{"compatibility":"SIDEWAYS"}`, 422, 42203, ""},
		{"GET", "/config/s-value", "", 404, 40408, ""},
		{"GET", "/config/s-value?defaultToGlobal=true", "", 200, 0, `{"compatibilityLevel":"FULL"}`},
		{"POST", "/compatibility/subjects/s-value/versions/latest", string(body), 200, 0, `{"is_compatible":true,"messages":[]}`},
		{"DELETE", "/subjects/s-value", "", 200, 0, `[1]`},
		{"GET", "/subjects/s-value/versions/1", "", 404, 40401, ""},
	}
	for _, tt := range tests {
		status, raw, m := do(tt.method, tt.path, tt.body)
		if status != tt.status {
			t.Errorf("%s %s: status %d, want %d (%s)", tt.method, tt.path, status, tt.status, raw)
			continue
		}
		if tt.code != 0 && (m["error_code"] != tt.code || m["message"] == "") {
			t.Errorf("%s %s: body %s, want error_code %v with a message", tt.method, tt.path, raw, tt.code)
		}
		if tt.want != "" && raw != tt.want {
			t.Errorf("%s %s: body %s, want %s", tt.method, tt.path, raw, tt.want)
		}
	}

	status, raw, m := do("GET", "/subjects/s-value/versions/1?deleted=true", "")
	if status != 200 || m["id"] != float64(1) || m["version"] != float64(1) || m["schema"] != v1 || m["subject"] != "s-value" {
		t.Errorf("deleted version: %d %s", status, raw)
	}
}

func TestRestartKeepsState(t *testing.T) {
	ctx := testCtx(t)
	brokers := newCluster(t)
	reg, url := start(t, brokers)
	cl := client(t, url)
	ids := map[string]int{}
	for subject, s := range map[string]string{"a-value": v1, "b-value": v2} {
		id, err := cl.RegisterSchema(ctx, subject, avro(s), -1, -1)
		if err != nil {
			t.Fatal(err)
		}
		ids[subject] = id
	}
	if _, err := cl.RegisterSchema(ctx, "a-value", avro(v2), -1, -1); err != nil {
		t.Fatal(err)
	}
	cl.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatFull}, "b-value")
	if _, err := cl.DeleteSubject(ctx, "b-value", sr.SoftDelete); err != nil {
		t.Fatal(err)
	}
	reg.Close()

	_, url2 := start(t, brokers)
	cl2 := client(t, url2)
	for subject, id := range ids {
		ss, err := cl2.SchemaByVersion(ctx, subject, 1)
		if subject == "b-value" {
			wantCode(t, err, 40401) // soft-deleted before the restart
			continue
		}
		if err != nil || ss.ID != id {
			t.Fatalf("%s v1 after restart: %+v %v, want id %d", subject, ss, err, id)
		}
	}
	latest, err := cl2.SchemaByVersion(ctx, "a-value", -1)
	if err != nil || latest.Version != 2 || latest.ID != ids["b-value"] {
		t.Fatalf("a-value latest after restart: %+v %v, want version 2 id %d", latest, err, ids["b-value"])
	}
	if r := cl2.Compatibility(ctx, "b-value"); r[0].Level != sr.CompatFull {
		t.Fatalf("b-value level after restart: %+v", r[0])
	}
	// A new schema gets a fresh id, never one handed out before.
	id, err := cl2.RegisterSchema(ctx, "c-value", avro(v3), -1, -1)
	if err != nil || id <= max(ids["a-value"], ids["b-value"]) {
		t.Fatalf("new schema after restart: id %d err %v", id, err)
	}
}

// Two registries on one broker, registering at once, must agree on every
// id and never give one id to two schemas.
func TestSharedLog(t *testing.T) {
	ctx := testCtx(t)
	brokers := newCluster(t)
	_, urlA := start(t, brokers)
	_, urlB := start(t, brokers)
	clients := []*sr.Client{client(t, urlA), client(t, urlB)}
	// Unrelated records under one subject: only ids and versions matter.
	if r := clients[0].SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatNone}, "shared-value"); r[0].Err != nil {
		t.Fatal(r[0].Err)
	}

	const n = 6
	schemaN := func(i int) string {
		return fmt.Sprintf(`{"type":"record","name":"R%d","fields":[{"name":"f","type":"string"}]}`, i)
	}
	var wg sync.WaitGroup
	got := make([][2]int, n)
	errs := make(chan error, 2*n)
	for i := range n {
		for c := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Same subject from both sides: versions race too.
				id, err := clients[c].RegisterSchema(ctx, "shared-value", avro(schemaN(i)), -1, -1)
				if err != nil {
					errs <- err
				}
				got[i][c] = id
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("register: %v", err)
	}
	seen := map[int]int{}
	for i, ids := range got {
		if ids[0] != ids[1] {
			t.Errorf("schema %d: registries answered ids %d and %d", i, ids[0], ids[1])
		}
		if j, dup := seen[ids[0]]; dup {
			t.Errorf("id %d given to schemas %d and %d", ids[0], j, i)
		}
		seen[ids[0]] = i
		for _, cl := range clients {
			s, err := cl.SchemaByID(ctx, ids[0])
			if err != nil || s.Schema != schemaN(i) {
				t.Errorf("schema %d by id %d: %q %v", i, ids[0], s.Schema, err)
			}
		}
	}
	va, _ := clients[0].SubjectVersions(ctx, "shared-value")
	vb, _ := clients[1].SubjectVersions(ctx, "shared-value")
	if len(va) != n || !slices.Equal(va, vb) {
		t.Errorf("versions differ or miss: %v vs %v, want %d", va, vb, n)
	}

	// A registry started afterwards replays the raced log to the same
	// state, losing records included.
	_, urlC := start(t, brokers)
	late := client(t, urlC)
	for i, ids := range got {
		s, err := late.SchemaByID(ctx, ids[0])
		if err != nil || s.Schema != schemaN(i) {
			t.Errorf("replayed registry: schema %d by id %d: %q %v", i, ids[0], s.Schema, err)
		}
	}
	for _, v := range va {
		a, _ := clients[0].SchemaByVersion(ctx, "shared-value", v)
		c, err := late.SchemaByVersion(ctx, "shared-value", v)
		if err != nil || a.ID != c.ID {
			t.Errorf("version %d: id %d live, %d replayed (%v)", v, a.ID, c.ID, err)
		}
	}
}

// A writer that loses its version to another process retries with the
// next one, and re-writes the winner's record so compaction keeps it.
func TestLostRaceRetries(t *testing.T) {
	ctx := testCtx(t)
	brokers := newCluster(t)
	reg, url := start(t, brokers)
	cl := client(t, url)
	if r := cl.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatNone}); r[0].Err != nil {
		t.Fatal(r[0].Err)
	}

	raw, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(DefaultTopic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	const rival = `{"type":"record","name":"Rival","fields":[]}`
	subject := "race-value"
	var once sync.Once
	reg.beforeProduce = func() {
		once.Do(func() {
			// Another process takes version 1 and id 1 first.
			k, _ := json.Marshal(recordKey{KeyType: "SCHEMA", Subject: &subject, Version: 1, Magic: 1})
			v, _ := json.Marshal(schemaValue{Subject: subject, Version: 1, ID: 1, Schema: rival})
			if err := raw.ProduceSync(ctx, &kgo.Record{Key: k, Value: v}).FirstErr(); err != nil {
				t.Errorf("rival produce: %v", err)
			}
		})
	}
	ss, err := cl.CreateSchema(ctx, subject, avro(v1))
	if err != nil {
		t.Fatalf("register after a lost race: %v", err)
	}
	if ss.Version != 2 || ss.ID != 2 {
		t.Fatalf("got version %d id %d, want version 2 id 2 after the rival's 1/1", ss.Version, ss.ID)
	}
	first, err := cl.SchemaByVersion(ctx, subject, 1)
	if err != nil || first.ID != 1 || first.Schema.Schema != rival {
		t.Fatalf("version 1: %+v %v, want the rival's", first, err)
	}

	// The last record under version 1's key must be the rival's, or
	// compaction would drop the winner and keep our losing record.
	consumer, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{DefaultTopic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	var last schemaValue
	var records int
	for records < 5 { // config, rival, ours (lost), repair, ours (version 2)
		fs := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read log: saw %d records: %v", records, err)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			records++
			var k recordKey
			_ = json.Unmarshal(rec.Key, &k)
			if k.KeyType == "SCHEMA" && k.Version == 1 {
				_ = json.Unmarshal(rec.Value, &last)
			}
		})
	}
	if last.ID != 1 || last.Schema != rival {
		t.Fatalf("last record for version 1 is %+v, want the rival's", last)
	}
}
