package keyless

// Pipeline: key operations multiplexed on one KeyOperations Operate stream.

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/handshaker/handshaker/clients/go/gen/handshaker/v1"
)

// errPipelineClosed is what calls on a closed Pipeline (and calls still
// waiting when it was closed) fail with.
var errPipelineClosed = status.Error(codes.Canceled, "the keyless pipeline is closed")

// Pipeline runs key operations on one KeyOperations Operate stream instead of
// one unary RPC each, for a busy server: concurrent Signs from many
// handshakes share the stream, each under an operation id of its own, and
// each gets its answer when the service finishes it, in whatever order. A
// failed operation fails only its caller (with the status the unary RPC would
// have had); the stream goes on. If the stream breaks (the service restarted,
// the connection dropped), every operation waiting on it fails with the
// stream's status, and the next operation opens a new stream.
//
// The service runs at most 64 operations of a stream at once and reads no
// further until one finishes, so a burst waits in the stream's flow control
// rather than in memory. A Pipeline is safe for concurrent use; Close it when
// done, since an open stream holds two goroutines and an RPC on the service.
type Pipeline struct {
	client pb.KeyOperationsClient
	mu     sync.Mutex
	closed bool
	cur    *operateStream
}

// NewPipeline returns a Pipeline over conn. The stream opens on the first
// operation.
func NewPipeline(conn grpc.ClientConnInterface) *Pipeline {
	return &Pipeline{client: pb.NewKeyOperationsClient(conn)}
}

// Key is NewKey with the Key's operations (GetCredential here, then every
// Sign and Decrypt) on this Pipeline.
func (p *Pipeline) Key(ctx context.Context, credential string) (*Key, error) {
	return newKey(ctx, pipelineOps{p}, credential)
}

// Certificate is the package's Certificate with the key's operations on this
// Pipeline.
func (p *Pipeline) Certificate(ctx context.Context, credential string) (tls.Certificate, error) {
	key, err := p.Key(ctx, credential)
	if err != nil {
		return tls.Certificate{}, err
	}
	return key.Certificate(), nil
}

// Close ends the stream. Operations still waiting fail with Canceled, and so
// does every later one.
func (p *Pipeline) Close() error {
	p.mu.Lock()
	p.closed = true
	s := p.cur
	p.cur = nil
	p.mu.Unlock()
	if s != nil {
		s.fail(errPipelineClosed)
		s.cancel()
	}
	return nil
}

// stream returns the live stream, opening one when there is none (first use,
// or the last one broke).
func (p *Pipeline) stream(ctx context.Context) (*operateStream, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errPipelineClosed
	}
	if p.cur != nil && !p.cur.broken() {
		return p.cur, nil
	}
	// The stream outlives any one caller, so its context is its own, ended
	// by Close or by its breaking. Opening it waits for the channel to
	// connect, though, and that wait is the caller's: when the caller gives
	// up first, the half-open stream is cancelled.
	streamCtx, cancel := context.WithCancel(context.Background())
	abandon := context.AfterFunc(ctx, cancel)
	stream, err := p.client.Operate(streamCtx)
	if !abandon() {
		cancel()
		return nil, ctx.Err()
	}
	if err != nil {
		cancel()
		return nil, err
	}
	s := &operateStream{
		stream:  stream,
		cancel:  cancel,
		sends:   make(chan *pb.OperateRequest),
		done:    make(chan struct{}),
		waiters: map[uint64]chan *pb.OperateResponse{},
	}
	p.cur = s
	go s.sendLoop()
	go s.recvLoop()
	return s, nil
}

// do runs one operation on the stream and returns its answer; an answer
// that is an OperationError comes back as that status's error.
func (p *Pipeline) do(ctx context.Context, request *pb.OperateRequest) (*pb.OperateResponse, error) {
	s, err := p.stream(ctx)
	if err != nil {
		return nil, err
	}
	id, answer, err := s.register()
	if err != nil {
		return nil, err
	}
	request.OperationId = id
	select {
	case s.sends <- request:
	case <-s.done:
		return nil, s.failure()
	case <-ctx.Done():
		s.forget(id)
		return nil, ctx.Err()
	}
	select {
	case response, ok := <-answer:
		if !ok {
			return nil, s.failure()
		}
		if e := response.GetError(); e != nil {
			return nil, status.Error(codes.Code(e.Code), e.Message)
		}
		return response, nil
	case <-ctx.Done():
		// The service may still answer; the answer is dropped. Ids are never
		// reused on a stream, so it cannot be taken for a later operation's.
		s.forget(id)
		return nil, ctx.Err()
	}
}

// operateStream is one Operate stream and the operations waiting on it.
type operateStream struct {
	stream grpc.BidiStreamingClient[pb.OperateRequest, pb.OperateResponse]
	cancel context.CancelFunc
	// sends carries requests to sendLoop, the stream's only writer (gRPC
	// allows one SendMsg at a time); a caller waits on it with its own
	// context, so a stream blocked by flow control does not hold a caller
	// past its deadline.
	sends chan *pb.OperateRequest
	// done is closed when the stream broke; err is why.
	done chan struct{}

	mu      sync.Mutex
	nextID  uint64
	waiters map[uint64]chan *pb.OperateResponse
	err     error
}

func (s *operateStream) register() (uint64, chan *pb.OperateResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, nil, s.err
	}
	s.nextID++
	answer := make(chan *pb.OperateResponse, 1)
	s.waiters[s.nextID] = answer
	return s.nextID, answer, nil
}

func (s *operateStream) forget(id uint64) {
	s.mu.Lock()
	delete(s.waiters, id)
	s.mu.Unlock()
}

func (s *operateStream) waiting(id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.waiters[id]
	return ok
}

func (s *operateStream) broken() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *operateStream) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// fail marks the stream broken with err and fails every operation waiting
// on it (their answer channels close). Only the first call counts.
func (s *operateStream) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	s.err = err
	close(s.done)
	for id, answer := range s.waiters {
		close(answer)
		delete(s.waiters, id)
	}
}

func (s *operateStream) sendLoop() {
	for {
		select {
		case request := <-s.sends:
			if !s.waiting(request.OperationId) {
				continue // its caller gave up before it was sent
			}
			if err := s.stream.Send(request); err != nil {
				// The stream is over; recvLoop gets its status from Recv.
				// Until then, callers still see done close.
				return
			}
		case <-s.done:
			return
		}
	}
}

func (s *operateStream) recvLoop() {
	for {
		response, err := s.stream.Recv()
		if err != nil {
			if _, ok := status.FromError(err); !ok {
				err = status.Error(codes.Unavailable, fmt.Sprintf("the Operate stream broke: %v", err))
			}
			s.fail(err)
			s.cancel()
			return
		}
		s.mu.Lock()
		answer, ok := s.waiters[response.OperationId]
		delete(s.waiters, response.OperationId)
		s.mu.Unlock()
		if ok {
			answer <- response // buffered, and each id is answered once
		}
	}
}

// pipelineOps are a Key's operations on a Pipeline.
type pipelineOps struct{ p *Pipeline }

func (o pipelineOps) sign(ctx context.Context, request *pb.SignRequest) ([]byte, error) {
	response, err := o.p.do(ctx, &pb.OperateRequest{Operation: &pb.OperateRequest_Sign{Sign: request}})
	if err != nil {
		return nil, err
	}
	if r := response.GetSign(); r != nil {
		return r.Signature, nil
	}
	return nil, errUnexpectedAnswer
}

func (o pipelineOps) decrypt(ctx context.Context, request *pb.DecryptRequest) ([]byte, error) {
	response, err := o.p.do(ctx, &pb.OperateRequest{Operation: &pb.OperateRequest_Decrypt{Decrypt: request}})
	if err != nil {
		return nil, err
	}
	if r := response.GetDecrypt(); r != nil {
		return r.Plaintext, nil
	}
	return nil, errUnexpectedAnswer
}

func (o pipelineOps) getCredential(ctx context.Context, request *pb.GetCredentialRequest) (*pb.GetCredentialResponse, error) {
	response, err := o.p.do(ctx, &pb.OperateRequest{Operation: &pb.OperateRequest_GetCredential{GetCredential: request}})
	if err != nil {
		return nil, err
	}
	if r := response.GetGetCredential(); r != nil {
		return r, nil
	}
	return nil, errUnexpectedAnswer
}

var errUnexpectedAnswer = status.Error(codes.Internal, "the service answered another kind of operation")
