package remote

import (
	"testing"
)

func TestAuthsOf(t *testing.T) {
	cfg := []byte(`{"auths": {"10.0.0.1:5443": {"auth": "dXNlcjpwYTpzcw=="}, "https://index.docker.io/v1/": {"identitytoken": "tok"}}}`)
	got, err := authsOf(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a := got["10.0.0.1:5443"]; a.Username != "user" || a.Password != "pa:ss" || a.ServerAddress != "10.0.0.1:5443" {
		t.Errorf("private registry: %+v", a)
	}
	if a := got["docker.io"]; a.IdentityToken != "tok" || a.ServerAddress != "https://index.docker.io/v1/" {
		t.Errorf("Docker Hub: %+v", a)
	}
	if _, err := authsOf([]byte(`{"auths": {"x": {"auth": "%%%"}}}`)); err == nil {
		t.Error("bad base64: no error")
	}
	if got, err := authsOf(nil); err != nil || len(got) != 0 {
		t.Errorf("no config: %v %v", got, err)
	}
}
