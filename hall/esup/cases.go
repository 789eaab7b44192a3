package esup

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/record"
)

// FieldError is a case that lacks a field or has a bad one.
type FieldError struct {
	// Index is the case's place in its batch (0-based) or its CSV line.
	Index int
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return fmt.Sprintf("case %d: %s: %s", e.Index, e.Field, e.Msg) }

// MaxCases bounds the cases of one request or file.
const MaxCases = 100000

// caseFields are the columns of a cases CSV: the JSON names.
var caseFields = []string{"projectNo", "taskCode", "taskName", "deptCode", "deptName", "hall", "counter", "ticket",
	"staff", "staffName", "acceptedAt", "finishedAt"}

// DecodeCases reads one case object or an array of them and checks every
// case; one bad case is an error naming its field, and then no case is
// returned.
func DecodeCases(data []byte, loc *time.Location, now time.Time) ([]store.Case, error) {
	data = bytes.TrimSpace(data)
	// encoding/json would turn invalid bytes into U+FFFD without a word;
	// checkCase applies the rest of the rules to each field.
	if !utf8.Valid(data) {
		return nil, &FieldError{Index: 0, Field: "body", Msg: "not valid UTF-8"}
	}
	var raw []map[string]any
	switch {
	case len(data) > 0 && data[0] == '[':
		if err := json.Unmarshal(data, &raw); err != nil {
			return nil, &FieldError{Index: 0, Field: "body", Msg: "not a JSON array of case objects: " + err.Error()}
		}
	default:
		var one map[string]any
		if err := json.Unmarshal(data, &one); err != nil || one == nil {
			msg := "not a JSON object or array"
			if err != nil {
				msg += ": " + err.Error()
			}
			return nil, &FieldError{Index: 0, Field: "body", Msg: msg}
		}
		raw = []map[string]any{one}
	}
	if len(raw) > MaxCases {
		return nil, &FieldError{Index: MaxCases, Field: "body", Msg: fmt.Sprintf("more than %d cases", MaxCases)}
	}
	out := make([]store.Case, 0, len(raw))
	for i, m := range raw {
		fields := map[string]string{}
		for k, v := range m {
			switch v := v.(type) {
			case string:
				fields[k] = v
			case nil:
			default:
				return nil, &FieldError{Index: i, Field: k, Msg: "must be a string"}
			}
		}
		c, err := checkCase(i, fields, loc, now)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// ReadCasesCSV reads a CSV file whose header names the case fields (the
// JSON names) and checks every row like [DecodeCases]; a FieldError's
// Index is the line number.
func ReadCasesCSV(r io.Reader, loc *time.Location, now time.Time) ([]store.Case, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("cases csv: header: %w", err)
	}
	known := map[string]bool{}
	for _, f := range caseFields {
		known[f] = true
	}
	for i, h := range header {
		header[i] = strings.TrimPrefix(strings.TrimSpace(h), "\ufeff")
		if !known[header[i]] {
			return nil, &FieldError{Index: 1, Field: header[i], Msg: "unknown column"}
		}
	}
	var out []store.Case
	for line := 2; ; line++ {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("cases csv: %w", err)
		}
		if len(out) >= MaxCases {
			return nil, &FieldError{Index: line, Field: "file", Msg: fmt.Sprintf("more than %d cases", MaxCases)}
		}
		fields := map[string]string{}
		for i, v := range row {
			if v != "" {
				fields[header[i]] = v
			}
		}
		c, err := checkCase(line, fields, loc, now)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

func checkCase(i int, f map[string]string, loc *time.Location, now time.Time) (store.Case, error) {
	for _, k := range caseFields {
		lim, _ := record.CaseLimit(k)
		if err := record.CheckText(k, f[k], lim); err != nil {
			var re *record.RuleError
			errors.As(err, &re)
			return store.Case{}, &FieldError{Index: i, Field: k, Msg: re.Problem}
		}
	}
	for _, k := range []string{"projectNo", "hall", "counter", "ticket"} {
		if strings.TrimSpace(f[k]) == "" {
			return store.Case{}, &FieldError{Index: i, Field: k, Msg: "required"}
		}
	}
	for _, k := range []string{"hall", "counter"} {
		if !record.ValidID(f[k]) {
			return store.Case{}, &FieldError{Index: i, Field: k, Msg: "not of [A-Za-z0-9._-]{1,64}"}
		}
	}
	c := store.Case{ProjectNo: f["projectNo"], TaskCode: f["taskCode"], TaskName: f["taskName"], DeptCode: f["deptCode"],
		DeptName: f["deptName"], Hall: f["hall"], Counter: f["counter"], Ticket: f["ticket"], Staff: f["staff"],
		StaffName: f["staffName"], AcceptedAt: f["acceptedAt"], FinishedAt: f["finishedAt"], ReceivedMS: now.UnixMilli()}
	day := now.In(loc)
	for _, t := range []struct {
		name string
		v    string
		dst  **int64
	}{{"finishedAt", c.FinishedAt, &c.FinishedMS}, {"acceptedAt", c.AcceptedAt, &c.AcceptedMS}} {
		if t.v == "" {
			continue
		}
		ts, err := time.Parse(time.RFC3339, t.v)
		if err != nil {
			return store.Case{}, &FieldError{Index: i, Field: t.name, Msg: "not an RFC 3339 time"}
		}
		ms := ts.UnixMilli()
		*t.dst = &ms
		// acceptedAt comes last: it wins when both are there.
		day = ts.In(loc)
	}
	c.ServiceDay = day.Format(time.DateOnly)
	return c, nil
}
