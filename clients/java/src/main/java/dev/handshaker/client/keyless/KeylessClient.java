package dev.handshaker.client.keyless;

import com.google.protobuf.ByteString;
import dev.handshaker.v1.CertificateValidatorGrpc;
import dev.handshaker.v1.DecryptRequest;
import dev.handshaker.v1.GetCredentialRequest;
import dev.handshaker.v1.GetCredentialResponse;
import dev.handshaker.v1.KeyOperationsGrpc;
import dev.handshaker.v1.SignRequest;
import dev.handshaker.v1.ValidateChainRequest;
import dev.handshaker.v1.ValidateChainResponse;
import dev.handshaker.v1.Verdict;
import io.grpc.Channel;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.ByteArrayInputStream;
import java.security.cert.CertificateEncodingException;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.TimeUnit;

/**
 * Unary calls to the service's KeyOperations and CertificateValidator: private-key operations
 * with keys the keystore holds, and verdicts on peer chains, for a TLS stack of the caller's own
 * (see {@link KeylessKeyManager} and {@link KeylessTrustManager} for JSSE). Each call has a
 * deadline ({@link #withTimeout}, default 10 s); a failed call throws {@link KeylessException}
 * with the gRPC status. Thread-safe.
 */
public final class KeylessClient implements AutoCloseable {
  /** Long enough for an HSM-backed key under load, short enough that a handshake gives up. */
  public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(10);

  /** What a chain's leaf is used for. */
  public enum Purpose {
    SERVER_AUTH,
    CLIENT_AUTH
  }

  private final Channel channel;
  private final ManagedChannel owned;
  private final Duration timeout;
  // Set on a pipelined() client: Sign and Decrypt go through it instead of unary calls.
  private final KeylessPipeline pipeline;
  // Whether close() closes the pipeline (the client pipelined() made, not its withTimeout copies).
  private final boolean ownsPipeline;

  private KeylessClient(Channel channel, ManagedChannel owned, Duration timeout, KeylessPipeline pipeline,
      boolean ownsPipeline) {
    this.channel = channel;
    this.owned = owned;
    this.timeout = timeout;
    this.pipeline = pipeline;
    this.ownsPipeline = ownsPipeline;
  }

  /**
   * A client with a plaintext channel of its own to host:port (a service on loopback or a private
   * network; the service sees a loopback caller as the principal {@code local}). {@link #close()}
   * shuts the channel down.
   */
  public static KeylessClient forAddress(String address) {
    ManagedChannel channel = ManagedChannelBuilder.forTarget(Objects.requireNonNull(address)).usePlaintext().build();
    return new KeylessClient(channel, channel, DEFAULT_TIMEOUT, null, false);
  }

  /** A client over the caller's channel (TLS, a Unix socket, ...), which stays the caller's to close. */
  public static KeylessClient over(Channel channel) {
    return new KeylessClient(Objects.requireNonNull(channel), null, DEFAULT_TIMEOUT, null, false);
  }

  /** A client on the same channel whose calls have this deadline each; closing it closes nothing. */
  public KeylessClient withTimeout(Duration timeout) {
    if (timeout.isNegative() || timeout.isZero()) {
      throw new IllegalArgumentException("timeout must be positive");
    }
    return new KeylessClient(channel, null, timeout, pipeline, false);
  }

  /**
   * A client on the same channel whose Sign and Decrypt (and so those of the key managers and
   * keys made with it) share one Operate stream, a {@link KeylessPipeline} of its own, instead
   * of one unary call each; GetCredential and ValidateChain stay unary. Each operation keeps
   * this client's deadline. Closing the returned client closes the pipeline, not the channel.
   */
  public KeylessClient pipelined() {
    if (pipeline != null) {
      return this;
    }
    return new KeylessClient(channel, null, timeout, KeylessPipeline.over(channel, timeout), true);
  }

  /** The pipeline Sign and Decrypt go through, or null for unary calls. */
  public KeylessPipeline pipeline() {
    return pipeline;
  }

  public Duration timeout() {
    return timeout;
  }

  Channel channel() {
    return channel;
  }

  /** Signs {@code message} with a TLS signature scheme (0x0403 ecdsa_secp256r1_sha256, ...); the service hashes it. */
  public byte[] sign(KeyRef key, int signatureScheme, byte[] message) throws KeylessException {
    return sign(SignRequest.newBuilder()
        .setKey(key.toProto())
        .setSignatureScheme(signatureScheme)
        .setMessage(ByteString.copyFrom(message)));
  }

  /** Signs the scheme's hash of the content, computed by the caller (not for ed25519, which signs messages). */
  public byte[] signDigest(KeyRef key, int signatureScheme, byte[] digest) throws KeylessException {
    return sign(SignRequest.newBuilder()
        .setKey(key.toProto())
        .setSignatureScheme(signatureScheme)
        .setDigest(ByteString.copyFrom(digest)));
  }

  private byte[] sign(SignRequest.Builder request) throws KeylessException {
    if (pipeline != null) {
      return KeylessPipeline.await(pipeline.submitSign(request, timeout));
    }
    try {
      return keyOperations().sign(request.build()).getSignature().toByteArray();
    } catch (StatusRuntimeException e) {
      throw new KeylessException(e.getStatus());
    }
  }

  /**
   * RSAES-PKCS1-v1_5 decryption with implicit rejection: always {@code plaintextLength} bytes (48
   * for a TLS premaster secret), random ones when the ciphertext did not decrypt to that length,
   * so a bad ciphertext is not an error (RFC 5246 section 7.4.7.1).
   */
  public byte[] decrypt(KeyRef key, byte[] ciphertext, int plaintextLength) throws KeylessException {
    if (pipeline != null) {
      return pipeline.decrypt(key, ciphertext, plaintextLength, timeout);
    }
    try {
      return keyOperations()
          .decrypt(DecryptRequest.newBuilder()
              .setKey(key.toProto())
              .setCiphertext(ByteString.copyFrom(ciphertext))
              .setPlaintextLength(plaintextLength)
              .build())
          .getPlaintext()
          .toByteArray();
    } catch (StatusRuntimeException e) {
      throw new KeylessException(e.getStatus());
    }
  }

  /** The credential by its keystore name: its chain, key type and schemes. */
  public KeylessCredential credential(String name) throws KeylessException {
    return credential(KeyRef.credential(name));
  }

  public KeylessCredential credential(KeyRef key) throws KeylessException {
    GetCredentialResponse response;
    try {
      response = keyOperations().getCredential(GetCredentialRequest.newBuilder().setKey(key.toProto()).build());
    } catch (StatusRuntimeException e) {
      throw new KeylessException(e.getStatus());
    }
    return new KeylessCredential(
        response.getCredential(),
        parse(response.getCertificateChainList()).toArray(new X509Certificate[0]),
        response.getKeyType(),
        response.getSignatureSchemesList(),
        response.getDecrypts(),
        response.getSubjectKeyId().toByteArray());
  }

  /**
   * The verdict on a peer's chain (leaf first) for {@code purpose}, against the trust bundle
   * ({@code null} or empty: "default"; "system": the service host's CA store). A server's chain
   * needs a name; a client's is checked against one when it is not {@link PeerName#none()}.
   */
  public ChainVerdict validate(List<X509Certificate> chain, Purpose purpose, PeerName name, String trustBundle)
      throws KeylessException {
    ValidateChainRequest.Builder request = ValidateChainRequest.newBuilder()
        .setPurpose(purpose == Purpose.SERVER_AUTH
            ? dev.handshaker.v1.Purpose.PURPOSE_SERVER_AUTH
            : dev.handshaker.v1.Purpose.PURPOSE_CLIENT_AUTH);
    for (X509Certificate certificate : chain) {
      try {
        request.addCertificateChain(ByteString.copyFrom(certificate.getEncoded()));
      } catch (CertificateEncodingException e) {
        throw new KeylessException(Status.INVALID_ARGUMENT.withDescription("certificate_chain: not encodable").withCause(e));
      }
    }
    name.applyTo(request);
    if (trustBundle != null) {
      request.setTrustBundle(trustBundle);
    }
    ValidateChainResponse response;
    try {
      response = CertificateValidatorGrpc.newBlockingStub(channel)
          .withDeadlineAfter(timeout.toNanos(), TimeUnit.NANOSECONDS)
          .validateChain(request.build());
    } catch (StatusRuntimeException e) {
      throw new KeylessException(e.getStatus());
    }
    if (response.getVerdict() == Verdict.VERDICT_VALID) {
      return new ChainVerdict(true, parse(response.getVerifiedPathList()), 0, "");
    }
    if (response.getVerdict() == Verdict.VERDICT_INVALID) {
      return new ChainVerdict(false, List.of(), response.getAlert(), response.getReason());
    }
    throw new KeylessException(Status.INTERNAL.withDescription("ValidateChain answered no verdict"));
  }

  private KeyOperationsGrpc.KeyOperationsBlockingStub keyOperations() {
    return KeyOperationsGrpc.newBlockingStub(channel).withDeadlineAfter(timeout.toNanos(), TimeUnit.NANOSECONDS);
  }

  private static List<X509Certificate> parse(List<ByteString> ders) throws KeylessException {
    List<X509Certificate> certificates = new ArrayList<>(ders.size());
    try {
      CertificateFactory factory = CertificateFactory.getInstance("X.509");
      for (ByteString der : ders) {
        certificates.add((X509Certificate) factory.generateCertificate(new ByteArrayInputStream(der.toByteArray())));
      }
    } catch (CertificateException e) {
      throw new KeylessException(Status.INTERNAL.withDescription("the service sent a certificate that does not parse").withCause(e));
    }
    return certificates;
  }

  /**
   * Shuts down the channel {@link #forAddress} made (a no-op for a caller's channel), and closes
   * the pipeline of a client {@link #pipelined()} returned.
   */
  @Override
  public void close() {
    if (ownsPipeline) {
      pipeline.close();
    }
    if (owned != null) {
      owned.shutdown();
      try {
        if (!owned.awaitTermination(5, TimeUnit.SECONDS)) {
          owned.shutdownNow();
        }
      } catch (InterruptedException e) {
        owned.shutdownNow();
        Thread.currentThread().interrupt();
      }
    }
  }
}
