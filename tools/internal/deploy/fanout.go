package deploy

import (
	"context"
	"sync"
)

// batches splits n hosts into the batches they run in: with canary the first
// host alone, then parallel hosts at a time.
func batches(n, parallel int, canary bool) [][]int {
	if parallel < 1 {
		parallel = 1
	}
	var out [][]int
	i := 0
	if canary && n > 0 {
		out = append(out, []int{0})
		i = 1
	}
	for i < n {
		end := min(i+parallel, n)
		b := make([]int, 0, end-i)
		for j := i; j < end; j++ {
			b = append(b, j)
		}
		out = append(out, b)
		i = end
	}
	return out
}

// fanOut runs do for hosts 0..n-1 batch by batch (see batches); the hosts of
// a batch run concurrently and each finishes its own work (including its own
// rollback) before the next batch starts. It stops after the first batch in
// which do returned false, or when ctx is cancelled, and reports whether it
// stopped early. It knows nothing about what a strategy does.
func fanOut(ctx context.Context, n, parallel int, canary bool, do func(ctx context.Context, i int) bool) (failed bool) {
	for _, b := range batches(n, parallel, canary) {
		if ctx.Err() != nil {
			return true
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := true
		for _, i := range b {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if !do(ctx, i) {
					mu.Lock()
					ok = false
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if !ok {
			return true
		}
	}
	return false
}
