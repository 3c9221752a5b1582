package handshaker

// The gRPC channels to the service, shared by address or owned by a Config.

import (
	"fmt"
	"runtime"
	"sync"
	"weak"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/handshaker/handshaker/clients/go/gen/handshaker/v1"
)

// channelKey identifies a gRPC channel to the service: shared by address for
// Configs without DialOptions, else owned by one Config and closed once that
// Config is garbage.
type channelKey struct {
	addr   string
	config weak.Pointer[Config]
}

var channels = struct {
	sync.Mutex
	byKey map[channelKey]*grpc.ClientConn
}{byKey: map[channelKey]*grpc.ClientConn{}}

func (c *Config) handshakerClient() (pb.HandshakerClient, error) {
	if c.Service != nil {
		return pb.NewHandshakerClient(c.Service), nil
	}
	key := channelKey{addr: c.serviceAddr()}
	if len(c.DialOptions) > 0 {
		key.config = weak.Make(c)
	}
	channels.Lock()
	defer channels.Unlock()
	if cc, ok := channels.byKey[key]; ok {
		return pb.NewHandshakerClient(cc), nil
	}
	// The service listens on loopback or a unix socket unless it was given
	// its own TLS; a transport credential in DialOptions replaces this one.
	options := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, c.DialOptions...)
	cc, err := grpc.NewClient(key.addr, options...)
	if err != nil {
		return nil, fmt.Errorf("handshaker: service %s: %w", key.addr, err)
	}
	channels.byKey[key] = cc
	if len(c.DialOptions) > 0 {
		runtime.AddCleanup(c, closeChannel, key)
	}
	return pb.NewHandshakerClient(cc), nil
}

func closeChannel(key channelKey) {
	channels.Lock()
	cc := channels.byKey[key]
	delete(channels.byKey, key)
	channels.Unlock()
	if cc != nil {
		_ = cc.Close()
	}
}
