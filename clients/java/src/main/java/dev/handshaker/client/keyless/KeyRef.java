package dev.handshaker.client.keyless;

import com.google.protobuf.ByteString;
import dev.handshaker.v1.KeyReference;
import java.util.HexFormat;
import java.util.Objects;

/** Which keystore key an operation uses: a credential name, or its leaf's subjectKeyIdentifier. */
public final class KeyRef {
  private final String credential;
  private final byte[] subjectKeyId;

  private KeyRef(String credential, byte[] subjectKeyId) {
    this.credential = credential;
    this.subjectKeyId = subjectKeyId;
  }

  /** The credential by its keystore name. */
  public static KeyRef credential(String name) {
    if (Objects.requireNonNull(name, "name").isEmpty()) {
      throw new IllegalArgumentException("credential name must not be empty");
    }
    return new KeyRef(name, null);
  }

  /** The credential whose leaf has this subjectKeyIdentifier (RFC 5280 section 4.2.1.2). */
  public static KeyRef subjectKeyId(byte[] keyId) {
    if (Objects.requireNonNull(keyId, "keyId").length == 0) {
      throw new IllegalArgumentException("subject key id must not be empty");
    }
    return new KeyRef(null, keyId.clone());
  }

  KeyReference toProto() {
    return credential != null
        ? KeyReference.newBuilder().setCredential(credential).build()
        : KeyReference.newBuilder().setSubjectKeyId(ByteString.copyFrom(subjectKeyId)).build();
  }

  @Override
  public String toString() {
    return credential != null ? credential : "subject key id " + HexFormat.of().formatHex(subjectKeyId);
  }
}
