package buildkit

import (
	"context"

	"github.com/moby/buildkit/session/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Credentials returns the user and password for a registry host ("" for
// anonymous).
type Credentials func(host string) (user, password string, err error)

// authProvider answers the daemon's registry credential requests through the
// session, so credentials never travel in the build request.
type authProvider struct {
	auth.UnimplementedAuthServer
	creds Credentials
}

func (p authProvider) Register(s *grpc.Server) { auth.RegisterAuthServer(s, p) }

func (p authProvider) Credentials(_ context.Context, req *auth.CredentialsRequest) (*auth.CredentialsResponse, error) {
	if p.creds == nil {
		return &auth.CredentialsResponse{}, nil
	}
	user, pass, err := p.creds(req.Host)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &auth.CredentialsResponse{Username: user, Secret: pass}, nil
}
