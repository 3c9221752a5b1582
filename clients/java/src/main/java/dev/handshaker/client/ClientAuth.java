package dev.handshaker.client;

/** Whether a server asks for, and insists on, a client certificate. */
public enum ClientAuth {
  /** No CertificateRequest is sent. */
  NONE,
  /** A certificate is requested; a client may send none. */
  OPTIONAL,
  /** A client without a certificate fails with certificate_required. */
  REQUIRED;

  dev.handshaker.v1.ClientAuth toProto() {
    switch (this) {
      case OPTIONAL:
        return dev.handshaker.v1.ClientAuth.CLIENT_AUTH_OPTIONAL;
      case REQUIRED:
        return dev.handshaker.v1.ClientAuth.CLIENT_AUTH_REQUIRED;
      default:
        return dev.handshaker.v1.ClientAuth.CLIENT_AUTH_NONE;
    }
  }
}
