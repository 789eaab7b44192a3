package throttle

import (
	"fmt"
	"testing"
)

func TestEvery(t *testing.T) {
	for _, c := range []struct {
		rule Every
		want string
	}{
		{Failures(), "[1 2 3 100 200 300]"},
		{Refusals(), "[1 2 3 4 5 6 7 8 9 10 100 200 300]"},
		{Every{First: 2}, "[1 2]"},
		{Every{Nth: 150}, "[150 300]"},
		{Flood(), "[1 2 3 4 5 6 7 8 9 10 16 32 64 128 256]"},
	} {
		var logged []int64
		for n := int64(0); n <= 300; n++ {
			if c.rule.Log(n) {
				logged = append(logged, n)
			}
		}
		if got := fmt.Sprint(logged); got != c.want {
			t.Errorf("%+v logged %s, want %s", c.rule, got, c.want)
		}
	}
}
