package esup

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDecodeCasesRules(t *testing.T) {
	now := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	good := `{"projectNo":"620100-2026-000123","hall":"h1","counter":"W05","ticket":"A023","staff":"S017","staffName":"张三","taskName":"营业执照"}`
	if _, err := DecodeCases([]byte(good), time.UTC, now); err != nil {
		t.Fatalf("good case refused: %v", err)
	}
	for name, c := range map[string]struct{ from, to, field string }{
		"NUL in staff":         {`"S017"`, `"S\u0000017"`, "staff"},
		"invalid UTF-8":        {`"张三"`, "\"\xe5\xbc\"", "body"},
		"1 MB staff name":      {`"张三"`, `"` + strings.Repeat("张", 1<<19) + `"`, "staffName"},
		"newline in task name": {`"营业执照"`, `"a\nb"`, "taskName"},
		"long projectNo":       {`"620100-2026-000123"`, `"` + strings.Repeat("1", 65) + `"`, "projectNo"},
	} {
		_, err := DecodeCases([]byte(strings.Replace(good, c.from, c.to, 1)), time.UTC, now)
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
	if _, err := ReadCasesCSV(strings.NewReader(csv), time.UTC, now); err == nil {
		t.Error("CSV case with NUL accepted")
	}
}
