/// <reference path="../pb_data/types.d.ts" />

// Lattice webhooks for PocketBase (0.23 and later; tested with 0.40.4).
//
// Copy this file and lattice_webhook.js into pb_hooks/. After every record
// created, updated or deleted (once the change is committed), PocketBase
// sends a signed event to a Lattice sidecar's POST /v1/webhooks, which
// fetches the change at once instead of at its next poll. See docs/http.md,
// "Webhooks". Set in PocketBase's environment:
//
//   LATTICE_WEBHOOK_URL          e.g. http://127.0.0.1:7070/v1/webhooks
//   LATTICE_WEBHOOK_SECRET_FILE  the file holding the secret that the
//                                adapter's webhooks.secret_file holds
//   LATTICE_WEBHOOK_COLLECTIONS  optional: the collections to announce,
//                                comma-separated (default: all)
//
// Without the first two, nothing is sent. A webhook that fails is logged
// and dropped: Lattice's polls find the change anyway.
//
// Handlers run in isolated contexts, so the code they share lives in a
// module they require.

onRecordAfterCreateSuccess((e) => {
    require(`${__hooks}/lattice_webhook.js`).send(e.record, "create")
    e.next()
})

onRecordAfterUpdateSuccess((e) => {
    require(`${__hooks}/lattice_webhook.js`).send(e.record, "update")
    e.next()
})

onRecordAfterDeleteSuccess((e) => {
    require(`${__hooks}/lattice_webhook.js`).send(e.record, "delete")
    e.next()
})
