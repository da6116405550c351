package registry

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/sr"

	"prismflow/schemas"
)

const contentType = "application/vnd.schemaregistry.v1+json"

// maxBody bounds a request body; schemas are a few kilobytes.
const maxBody = 8 << 20

// Handler serves the Confluent Schema Registry REST API subset described in
// the package documentation.
func (r *Registry) Handler() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h func(*http.Request) (any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, req *http.Request) {
			v, err := h(req)
			r.reply(w, req, v, err)
		})
	}
	handle("GET /{$}", func(*http.Request) (any, error) { return struct{}{}, nil })
	handle("GET /subjects", r.getSubjects)
	handle("GET /subjects/{subject}/versions", r.getVersions)
	handle("POST /subjects/{subject}/versions", r.postVersion)
	handle("GET /subjects/{subject}/versions/{version}", r.getVersion)
	mux.HandleFunc("GET /subjects/{subject}/versions/{version}/schema", r.getVersionSchema)
	handle("POST /subjects/{subject}", r.lookup)
	handle("DELETE /subjects/{subject}", r.deleteSubjectHTTP)
	handle("GET /schemas/ids/{id}", r.getSchemaByID)
	mux.HandleFunc("GET /schemas/ids/{id}/schema", r.getSchemaTextByID)
	handle("GET /schemas/ids/{id}/versions", r.getIDVersions)
	handle("GET /schemas/ids/{id}/subjects", r.getIDSubjects)
	handle("GET /schemas/types", func(*http.Request) (any, error) { return []string{"AVRO"}, nil })
	handle("GET /config", r.getConfig)
	handle("PUT /config", r.putConfig)
	handle("GET /config/{subject}", r.getConfig)
	handle("PUT /config/{subject}", r.putConfig)
	handle("DELETE /config/{subject}", r.deleteConfig)
	handle("POST /compatibility/subjects/{subject}/versions/{version}", r.checkCompat)
	handle("POST /compatibility/subjects/{subject}/versions", r.checkCompat)
	return mux
}

func (r *Registry) reply(w http.ResponseWriter, req *http.Request, v any, err error) {
	w.Header().Set("Content-Type", contentType)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = errorf(codeStore, "%v", err)
		}
		status := ae.Code
		if status >= 10000 {
			status /= 100
		}
		if status >= 500 {
			r.log.Error("schema registry request failed", "method", req.Method, "path", req.URL.Path, "err", ae.Message)
		}
		w.WriteHeader(status)
		v = ae
	}
	if err := json.NewEncoder(w).Encode(v); err != nil {
		r.log.Debug("write registry response", "err", err)
	}
}

// readSchema decodes a request body holding a schema.
func readSchema(req *http.Request) (sr.Schema, error) {
	var s sr.Schema
	body, err := io.ReadAll(io.LimitReader(req.Body, maxBody))
	if err != nil {
		return s, errorf(codeInvalidSchema, "read body: %v", err)
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return s, errorf(codeInvalidSchema, "body is not a schema request: %v", err)
	}
	if s.Schema == "" {
		return s, errorf(codeInvalidSchema, "empty schema")
	}
	return s, nil
}

// synced runs read under r.mu. When it answers "not found", it runs again
// after catching up with the log, since another process may have just
// registered what was asked for.
func (r *Registry) synced(ctx context.Context, read func() (any, error)) (any, error) {
	r.mu.Lock()
	v, err := read()
	r.mu.Unlock()
	var ae *apiError
	if err == nil || !errors.As(err, &ae) || ae.Code/100 != 404 {
		return v, err
	}
	if serr := r.sync(ctx); serr != nil {
		return nil, errorf(codeStore, "read schemas log: %v", serr)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return read()
}

func (r *Registry) getSubjects(req *http.Request) (any, error) {
	showDeleted := req.URL.Query().Get("deleted") == "true"
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []string{}
	for s, vs := range r.st.subjects {
		for _, v := range vs {
			if showDeleted || !v.deleted {
				out = append(out, s)
				break
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// versions returns the subject's versions (with deleted ones if asked);
// r.mu held.
func (r *Registry) versions(subject string, deleted bool) ([]*version, error) {
	var out []*version
	for _, v := range r.st.subjects[subject] {
		if deleted || !v.deleted {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return nil, errorf(codeSubjectNotFound, "subject %q not found", subject)
	}
	return out, nil
}

func (r *Registry) getVersions(req *http.Request) (any, error) {
	subject := req.PathValue("subject")
	deleted := req.URL.Query().Get("deleted") == "true"
	return r.synced(req.Context(), func() (any, error) {
		vs, err := r.versions(subject, deleted)
		if err != nil {
			return nil, err
		}
		out := make([]int, len(vs))
		for i, v := range vs {
			out[i] = v.version
		}
		return out, nil
	})
}

// subjectSchema is the JSON of one subject version.
type subjectSchema struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
	ID      int    `json:"id"`
	Schema  string `json:"schema"`
}

// pick finds a version by its path form: a number, "latest" or -1; r.mu
// held.
func (r *Registry) pick(subject, ver string, deleted bool) (*version, error) {
	n := -1
	if ver != "latest" {
		var err error
		if n, err = strconv.Atoi(ver); err != nil || (n < 1 && n != -1) {
			return nil, errorf(codeInvalidVersion, "invalid version %q", ver)
		}
	}
	vs, err := r.versions(subject, deleted)
	if err != nil {
		return nil, err
	}
	if n == -1 {
		return vs[len(vs)-1], nil
	}
	for _, v := range vs {
		if v.version == n {
			return v, nil
		}
	}
	return nil, errorf(codeVersionNotFound, "version %d of subject %q not found", n, subject)
}

func (r *Registry) getVersion(req *http.Request) (any, error) {
	subject, ver := req.PathValue("subject"), req.PathValue("version")
	deleted := req.URL.Query().Get("deleted") == "true"
	return r.synced(req.Context(), func() (any, error) {
		v, err := r.pick(subject, ver, deleted)
		if err != nil {
			return nil, err
		}
		return subjectSchema{Subject: subject, Version: v.version, ID: v.id, Schema: r.st.texts[v.id]}, nil
	})
}

// getVersionSchema answers with the bare schema text, as Confluent does.
func (r *Registry) getVersionSchema(w http.ResponseWriter, req *http.Request) {
	v, err := r.getVersion(req)
	if err != nil {
		r.reply(w, req, nil, err)
		return
	}
	w.Header().Set("Content-Type", contentType)
	io.WriteString(w, v.(subjectSchema).Schema)
}

func (r *Registry) postVersion(req *http.Request) (any, error) {
	s, err := readSchema(req)
	if err != nil {
		return nil, err
	}
	id, err := r.register(req.Context(), req.PathValue("subject"), s)
	if err != nil {
		return nil, err
	}
	return struct {
		ID int `json:"id"`
	}{id}, nil
}

func (r *Registry) lookup(req *http.Request) (any, error) {
	subject := req.PathValue("subject")
	s, err := readSchema(req)
	if err != nil {
		return nil, err
	}
	p, err := parseSchema(s)
	if err != nil {
		return nil, err
	}
	deleted := req.URL.Query().Get("deleted") == "true"
	return r.synced(req.Context(), func() (any, error) {
		vs, err := r.versions(subject, deleted)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			if c, _ := schemas.CompactJSON(r.st.texts[v.id]); c == p.compact {
				return subjectSchema{Subject: subject, Version: v.version, ID: v.id, Schema: r.st.texts[v.id]}, nil
			}
		}
		return nil, errorf(codeSchemaNotFound, "schema not found under subject %q", subject)
	})
}

func (r *Registry) deleteSubjectHTTP(req *http.Request) (any, error) {
	if req.URL.Query().Get("permanent") == "true" {
		return nil, errorf(codeInvalidVersion, "permanent deletion is not supported by the embedded registry")
	}
	return r.deleteSubject(req.Context(), req.PathValue("subject"))
}

func parseID(req *http.Request) (int, error) {
	id, err := strconv.Atoi(req.PathValue("id"))
	if err != nil || id <= 0 {
		return 0, errorf(codeSchemaNotFound, "schema id %q not found", req.PathValue("id"))
	}
	return id, nil
}

// schemaText returns the text of id; r.mu held.
func (r *Registry) schemaText(id int) (string, error) {
	t, ok := r.st.texts[id]
	if !ok {
		return "", errorf(codeSchemaNotFound, "schema %d not found", id)
	}
	return t, nil
}

func (r *Registry) getSchemaByID(req *http.Request) (any, error) {
	id, err := parseID(req)
	if err != nil {
		return nil, err
	}
	return r.synced(req.Context(), func() (any, error) {
		t, err := r.schemaText(id)
		if err != nil {
			return nil, err
		}
		return struct {
			Schema string `json:"schema"`
		}{t}, nil
	})
}

func (r *Registry) getSchemaTextByID(w http.ResponseWriter, req *http.Request) {
	v, err := r.getSchemaByID(req)
	if err != nil {
		r.reply(w, req, nil, err)
		return
	}
	w.Header().Set("Content-Type", contentType)
	io.WriteString(w, v.(struct {
		Schema string `json:"schema"`
	}).Schema)
}

func (r *Registry) getIDVersions(req *http.Request) (any, error) {
	id, err := parseID(req)
	if err != nil {
		return nil, err
	}
	return r.synced(req.Context(), func() (any, error) {
		if _, err := r.schemaText(id); err != nil {
			return nil, err
		}
		out := r.subjectsOf(id)
		if out == nil {
			out = []sr.SubjectVersion{}
		}
		return out, nil
	})
}

func (r *Registry) getIDSubjects(req *http.Request) (any, error) {
	v, err := r.getIDVersions(req)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, sv := range v.([]sr.SubjectVersion) {
		if len(out) == 0 || out[len(out)-1] != sv.Subject {
			out = append(out, sv.Subject)
		}
	}
	return out, nil
}

type compatibilityLevel struct {
	Level sr.CompatibilityLevel `json:"compatibilityLevel"`
}

func (r *Registry) getConfig(req *http.Request) (any, error) {
	subject := req.PathValue("subject")
	r.mu.Lock()
	defer r.mu.Unlock()
	if subject == "" {
		return compatibilityLevel{r.st.global}, nil
	}
	if l, ok := r.st.compat[subject]; ok {
		return compatibilityLevel{l}, nil
	}
	if req.URL.Query().Get("defaultToGlobal") == "true" {
		return compatibilityLevel{r.st.global}, nil
	}
	return nil, errorf(codeCompatNotConfigured, "subject %q does not have subject-level compatibility configured", subject)
}

func (r *Registry) putConfig(req *http.Request) (any, error) {
	var body struct {
		Compatibility string `json:"compatibility"`
	}
	if err := json.NewDecoder(io.LimitReader(req.Body, maxBody)).Decode(&body); err != nil {
		return nil, errorf(codeInvalidCompat, "bad config body: %v", err)
	}
	var level sr.CompatibilityLevel
	if err := level.UnmarshalText([]byte(body.Compatibility)); err != nil {
		return nil, errorf(codeInvalidCompat, "invalid compatibility level %q", body.Compatibility)
	}
	var subject *string
	if s := req.PathValue("subject"); s != "" {
		subject = &s
	}
	if err := r.setConfig(req.Context(), subject, level); err != nil {
		return nil, err
	}
	return sr.SetCompatibility{Level: level}, nil
}

func (r *Registry) deleteConfig(req *http.Request) (any, error) {
	subject := req.PathValue("subject")
	r.mu.Lock()
	l, ok := r.st.compat[subject]
	r.mu.Unlock()
	if !ok {
		return nil, errorf(codeCompatNotConfigured, "subject %q does not have subject-level compatibility configured", subject)
	}
	if err := r.setConfig(req.Context(), &subject, 0); err != nil {
		return nil, err
	}
	return sr.SetCompatibility{Level: l}, nil
}

// checkCompat tests a schema against one version (or, without a version,
// all versions) at the subject's level, without registering it.
func (r *Registry) checkCompat(req *http.Request) (any, error) {
	subject, ver := req.PathValue("subject"), req.PathValue("version")
	s, err := readSchema(req)
	if err != nil {
		return nil, err
	}
	p, err := parseSchema(s)
	if err != nil {
		return nil, err
	}
	return r.synced(req.Context(), func() (any, error) {
		level := r.level(subject)
		var against []*version
		if ver == "" {
			vs, err := r.versions(subject, false)
			if err != nil {
				return nil, err
			}
			against = vs
			switch level {
			case sr.CompatBackward:
				level = sr.CompatBackwardTransitive
			case sr.CompatForward:
				level = sr.CompatForwardTransitive
			case sr.CompatFull:
				level = sr.CompatFullTransitive
			}
		} else {
			v, err := r.pick(subject, ver, false)
			if err != nil {
				return nil, err
			}
			against = []*version{v}
		}
		msgs, err := r.compatible(level, p, against)
		if err != nil {
			return nil, errorf(codeStore, "%v", err)
		}
		if msgs == nil {
			msgs = []string{}
		}
		return sr.CheckCompatibilityResult{Is: len(msgs) == 0, Messages: msgs}, nil
	})
}
