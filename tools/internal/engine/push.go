package engine

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/docker/docker/api/types/image"

	"github.com/slipway-dev/slipway/tools/internal/regauth"
)

// PushResult is what a push stream reported.
type PushResult struct {
	Tag    string
	Digest string
	Size   int64
}

// Push pushes one tagged ref and returns the manifest digest the engine
// reported in the stream's aux message. The stream is read to its end; any
// errorDetail fails the push, and a stream without a digest is a failure too.
func (c *Client) Push(ctx context.Context, ref string, auth regauth.Auth, fn func(Message)) (PushResult, error) {
	rc, err := c.api.ImagePush(ctx, ref, image.PushOptions{RegistryAuth: encodedOrEmpty(auth)})
	if err != nil {
		return PushResult{}, err
	}
	defer rc.Close()
	var res PushResult
	err = readStream(rc, func(m Message) {
		if len(m.Aux) > 0 {
			var a struct {
				Tag    string
				Digest string
				Size   int64
			}
			if json.Unmarshal(m.Aux, &a) == nil && a.Digest != "" {
				res = PushResult{Tag: a.Tag, Digest: a.Digest, Size: a.Size}
			}
		}
		if fn != nil {
			fn(m)
		}
	})
	if err != nil {
		return PushResult{}, err
	}
	if ctx.Err() != nil {
		return PushResult{}, ctx.Err()
	}
	if res.Digest == "" {
		return PushResult{}, fmt.Errorf("the engine's push stream for %s ended without a digest", ref)
	}
	return res, nil
}

// encodedOrEmpty: the engine wants some X-Registry-Auth header value even for
// anonymous pushes on old API versions; an empty JSON object is the safe one.
func encodedOrEmpty(a regauth.Auth) string {
	if e := a.Encoded(); e != "" {
		return e
	}
	return "e30=" // base64("{}")
}

// RemoteDigest asks the registry, through the engine's distribution endpoint,
// for the manifest digest ref currently points to.
func (c *Client) RemoteDigest(ctx context.Context, ref string, auth regauth.Auth) (string, error) {
	d, err := c.api.DistributionInspect(ctx, ref, auth.Encoded())
	if err != nil {
		return "", err
	}
	return string(d.Descriptor.Digest), nil
}
