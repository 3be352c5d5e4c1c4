package exit

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestCode(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{nil, OK},
		{errors.New("x"), Failed},
		{Usagef("bad flag %q", "--x"), Usage},
		{fmt.Errorf("outer: %w", With(TestsFailed, errors.New("t"))), TestsFailed},
		{fmt.Errorf("op: %w", context.Canceled), Cancelled},
		{With(RolledBack, fmt.Errorf("x: %w", context.Canceled)), RolledBack},
	}
	for _, c := range cases {
		if got := Code(c.err); got != c.want {
			t.Errorf("Code(%v) = %d, want %d", c.err, got, c.want)
		}
	}
	if With(Usage, nil) != nil {
		t.Error("With(code, nil) must stay nil")
	}
}
