// Pruning after a deploy: old releases beyond --keep and the images only
// they used.

package deploy

import (
	"context"
	"strings"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
)

// prune removes releases beyond keep (never the current one) and the images
// only they used. Failures are warnings: the deploy itself succeeded.
func prune(ctx context.Context, r *hostRun, keep int) {
	h := r.conn.h
	rels, current, err := h.Releases(ctx)
	if err != nil {
		r.conn.log.Warnf("pruning: %v", err)
		return
	}
	if h.DryRun {
		current = r.d.Release
	}
	drop, images := pruneSet(rels, current, keep)
	drop = withoutInUse(ctx, h, drop, r.conn.log)
	if len(drop) == 0 {
		return
	}
	if err := h.RemoveReleases(ctx, drop, images); err != nil {
		r.conn.log.Warnf("%v", err)
		return
	}
	r.res.Pruned = drop
	r.conn.log.Printf("pruned %d old release(s) and %d image(s)", len(drop), len(images))
	if keep, ok := storeKeep(rels, drop); ok {
		if err := h.PruneStore(ctx, keep); err != nil {
			r.conn.log.Warnf("%v", err)
		}
	}
}

// storeKeep lists the store entries the releases that stay mount; false when
// a release without a readable release.json stays (its mounts are unknown).
func storeKeep(rels []remote.Release, drop []string) ([]string, bool) {
	dropped := map[string]bool{}
	for _, d := range drop {
		dropped[d] = true
	}
	var keep []string
	for _, r := range rels {
		if dropped[r.Name] {
			continue
		}
		if r.Meta == nil {
			return nil, false
		}
		for _, e := range r.Meta.Store {
			dir, _, _ := strings.Cut(e, "/")
			keep = append(keep, dir)
		}
	}
	return keep, true
}

// pruneSet picks the releases to delete (all but current and the newest
// keep-1 others) and the images no kept release uses.
func pruneSet(rels []remote.Release, current string, keep int) (drop []string, images []string) {
	kept := map[string]bool{}
	if current != "" {
		kept[current] = true
	}
	for _, r := range rels { // newest first
		if len(kept) >= keep {
			break
		}
		kept[r.Name] = true
	}
	keepImg := map[string]bool{}
	for _, r := range rels {
		if kept[r.Name] && r.Meta != nil {
			for _, img := range r.Meta.Images {
				keepImg[img] = true
			}
		}
	}
	seen := map[string]bool{}
	for _, r := range rels {
		if kept[r.Name] {
			continue
		}
		drop = append(drop, r.Name)
		if r.Meta == nil {
			continue
		}
		for _, img := range r.Meta.Images {
			if !keepImg[img] && !seen[img] {
				seen[img] = true
				images = append(images, img)
			}
		}
	}
	return drop, images
}
