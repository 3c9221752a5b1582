package dev.handshaker.client;

import io.grpc.Status;
import java.io.IOException;

/**
 * The handshaker service refused or could not run the handshake: a gRPC status other than OK
 * (misuse, an unknown credential or trust bundle, the service unreachable). A TLS failure is a
 * {@link HandshakeFailedException} instead.
 */
public class HandshakerServiceException extends IOException {
  private static final long serialVersionUID = 1L;

  private final transient Status status;

  public HandshakerServiceException(Status status) {
    super(
        "handshaker service: "
            + status.getCode()
            + (status.getDescription() == null ? "" : ": " + status.getDescription()),
        status.getCause());
    this.status = status;
  }

  HandshakerServiceException(String message) {
    super("handshaker service: " + message);
    this.status = Status.INTERNAL.withDescription(message);
  }

  /** The gRPC status the service answered with. */
  public Status status() {
    return status;
  }
}
