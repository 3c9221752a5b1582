package dev.handshaker.client.keyless;

import dev.handshaker.client.HandshakerServiceException;
import io.grpc.Status;

/**
 * A KeyOperations or CertificateValidator call failed with a gRPC status: NOT_FOUND (an unknown
 * credential, key id or trust bundle), PERMISSION_DENIED (the policy grants this caller no such
 * use of the key), INVALID_ARGUMENT (naming the request field), UNAVAILABLE (the service, or the
 * key's backend, is down), DEADLINE_EXCEEDED (the client's deadline passed). A chain that does
 * not validate is not a status: see {@link KeylessCertificateException}.
 */
public class KeylessException extends HandshakerServiceException {
  private static final long serialVersionUID = 1L;

  public KeylessException(Status status) {
    super(status);
  }

  /** The gRPC status code, the part callers branch on. */
  public Status.Code code() {
    return status().getCode();
  }
}
