package esup

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hallrate/hallrate/record"
)

func TestDecodeCasesRules(t *testing.T) {
	now := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	good := `{"projectNo":"620100-2026-000123","hall":"h1","counter":"W05","ticket":"A023","staff":"S017","staffName":"张三","taskName":"营业执照"}`
	if _, err := DecodeCases(strings.NewReader(good), time.UTC, now); err != nil {
		t.Fatalf("good case refused: %v", err)
	}
	for name, c := range map[string]struct{ from, to, field string }{
		"NUL in staff":         {`"S017"`, `"S\u0000017"`, "staff"},
		"invalid UTF-8":        {`"张三"`, "\"\xe5\xbc\"", "staffName"},
		"1 MB staff name":      {`"张三"`, `"` + strings.Repeat("张", 1<<19) + `"`, "staffName"},
		"newline in task name": {`"营业执照"`, `"a\nb"`, "taskName"},
		"long projectNo":       {`"620100-2026-000123"`, `"` + strings.Repeat("1", 65) + `"`, "projectNo"},
	} {
		_, err := DecodeCases(strings.NewReader(strings.Replace(good, c.from, c.to, 1)), time.UTC, now)
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%s: %v, want a FieldError", name, err)
			continue
		}
		if !strings.Contains(err.Error(), c.field) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %q does not name %s on one line", name, err, c.field)
		}
	}
	csv := "projectNo,hall,counter,ticket,staff\nP1,h1,W05,A1,S\x00017\n"
	if _, err := ReadCasesCSV(strings.NewReader(csv), "", time.UTC, now); err == nil {
		t.Error("CSV case with NUL accepted")
	}
}

var day = time.Date(2026, 11, 24, 16, 0, 0, 0, time.UTC)

func TestReadCasesCSVEncodings(t *testing.T) {
	const header = "projectNo,hall,counter,ticket,staffName\n"
	for _, c := range []struct {
		name, encoding, file string
		want                 string // staffName of the one case, or the error
	}{
		{"utf-8", "", header + "P1,h1,W01,A001,张三\n", "张三"},
		{"utf-8 with BOM", "utf-8", "\ufeff" + header + "P1,h1,W01,A001,张三\n", "张三"},
		{"gbk", "gbk", header + "P1,h1,W01,A001,\xd5\xc5\xc8\xfd\n", "张三"},
		{"gb18030 four bytes", "gbk", header + "P1,h1,W01,A001,\x95\x32\x82\x36\n", "\U00020000"},
		{"gbk read as utf-8", "", header + "P1,h1,W01,A001,\xd5\xc5\xc8\xfd\n", "case 2: staffName: not UTF-8"},
		{"not gbk either", "gbk", header + "P1,h1,W01,A001,ok\nP2,h1,W01,A002,\xff\xff\n", "case 3: staffName: not GB 18030"},
		{"NUL in a quoted field", "", header + "P1,h1,W01,A001,\"a\x00b\"\n", "case 2: staffName: contains NUL"},
		{"NUL after an empty line", "", header + "P1,h1,W01,A001,a\n\nP2,h1,W01,A002,\"x\x00\"\n", "case 4: staffName: contains NUL"},
		{"column named twice", "", "projectNo,hall,counter,ticket,staff,staff\nP1,h1,W01,A001,S1,S2\n", "case 1: staff: column named twice"},
		{"unknown encoding", "latin1", header, `encoding "latin1" is not utf-8 or gbk`},
	} {
		t.Run(c.name, func(t *testing.T) {
			cs, err := ReadCasesCSV(strings.NewReader(c.file), c.encoding, time.UTC, day)
			if err != nil {
				if !strings.Contains(err.Error(), c.want) {
					t.Fatalf("error %q, want %q", err, c.want)
				}
				return
			}
			if len(cs) != 1 || cs[0].StaffName != c.want {
				t.Fatalf("read %+v, want staffName %q", cs, c.want)
			}
		})
	}
}

func TestDecodeCasesStreams(t *testing.T) {
	one := `{"projectNo":"P1","hall":"h1","counter":"W01","ticket":"A001"}`
	for _, c := range []struct{ body, want string }{
		{one, ""},
		{" [" + one + "," + strings.Replace(one, "P1", "P2", 1) + "]\n", ""},
		{"[" + one + "] x", "more after the JSON value"},
		{one + one, "more after the JSON value"},
		{"[" + one + ",{}," + strings.Repeat("{},", 1000) + "{}]", "case 1: projectNo: required"},
		{"[1]", "case 0: body: not a JSON case object"},
		{`{"projectNo":7}`, "case 0: projectNo: must be a string"},
		{"", "case 0: body: not a JSON object or array: EOF"},
	} {
		cs, err := DecodeCases(strings.NewReader(c.body), time.UTC, day)
		var fe *FieldError
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%.40s: %v", c.body, err)
		case c.want == "" && len(cs) == 0:
			t.Errorf("%.40s: no cases", c.body)
		case c.want != "" && (!errors.As(err, &fe) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%.40s: error %v, want %q", c.body, err, c.want)
		}
	}
}

// FuzzDecodeCases feeds the case decoder (JSON, as POST /api/v1/cases
// takes it) arbitrary bytes: it never panics, and every case it accepts
// obeys the field rules, has its required fields and a service day.
func FuzzDecodeCases(f *testing.F) {
	f.Add([]byte(`{"projectNo":"620100-2026-000123","hall":"h1","counter":"W05","ticket":"A023","staff":"S017","staffName":"张三","acceptedAt":"2026-11-24T09:02:00+08:00"}`))
	f.Add([]byte(`[{"projectNo":"P1","hall":"h1","counter":"W05","ticket":"A1"},{"projectNo":"P2","hall":"h1","counter":"W05","ticket":"A2","staff":"S\u0000"}]`))
	f.Add([]byte(`[{},{},{}]`))
	now := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		cs, err := DecodeCases(bytes.NewReader(data), time.UTC, now)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		for _, c := range cs {
			for field, v := range map[string]string{"projectNo": c.ProjectNo, "taskCode": c.TaskCode, "taskName": c.TaskName,
				"deptCode": c.DeptCode, "deptName": c.DeptName, "hall": c.Hall, "counter": c.Counter, "ticket": c.Ticket,
				"staff": c.Staff, "staffName": c.StaffName, "acceptedAt": c.AcceptedAt, "finishedAt": c.FinishedAt} {
				lim, _ := record.CaseLimit(field)
				if err := record.CheckText(field, v, lim); err != nil {
					t.Fatalf("accepted case breaks the rules: %v", err)
				}
			}
			if c.ProjectNo == "" || c.Ticket == "" || !record.ValidID(c.Hall) || !record.ValidID(c.Counter) || c.ServiceDay == "" {
				t.Fatalf("accepted an incomplete case %+v", c)
			}
		}
	})
}
