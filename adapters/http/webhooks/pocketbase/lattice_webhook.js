// The sender of Lattice webhooks, required by lattice_webhook.pb.js.
//
// An event is the JSON object {"collection", "id", "action"}, sent with
// X-Lattice-Timestamp (unix seconds) and X-Lattice-Signature:
// "sha256=" and the hex HMAC-SHA256, under the shared secret, of the
// timestamp, a dot and the body, exactly as sent. The body also carries a
// random nonce, which the receiver ignores: two events of one record
// within one second would otherwise be signed alike, and the second
// refused as a replay of the first.

module.exports = {
    send: (record, action) => {
        const url = $os.getenv("LATTICE_WEBHOOK_URL")
        const secretFile = $os.getenv("LATTICE_WEBHOOK_SECRET_FILE")
        if (!url || !secretFile) {
            return
        }
        const collection = record.collection().name
        const only = $os.getenv("LATTICE_WEBHOOK_COLLECTIONS")
        if (only && !only.split(",").map((s) => s.trim()).includes(collection)) {
            return
        }
        try {
            const secret = toString($os.readFile(secretFile)).trim()
            const body = JSON.stringify({ collection: collection, id: record.id, action: action, nonce: $security.randomString(16) })
            const ts = String(Math.floor(Date.now() / 1000))
            const res = $http.send({
                url: url,
                method: "POST",
                body: body,
                headers: {
                    "content-type": "application/json",
                    "x-lattice-timestamp": ts,
                    "x-lattice-signature": "sha256=" + $security.hs256(ts + "." + body, secret),
                },
                timeout: 5,
            })
            if (res.statusCode !== 204) {
                $app.logger().warn("lattice webhook refused", "status", res.statusCode, "collection", collection, "id", record.id)
            }
        } catch (err) {
            $app.logger().warn("lattice webhook failed", "error", String(err), "collection", collection, "id", record.id)
        }
    },
}
