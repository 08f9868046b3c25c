/// <reference path="../pb_data/types.d.ts" />

// The CRM's contacts, as a PocketBase user would create them: a migration
// that `pocketbase serve` applies at start. The API rules stay empty, so only
// superusers may read or write the records (Lattice's sidecar logs in as one).
// The autodate field `updated` is what the sidecar polls for changes.
migrate((app) => {
  const contacts = new Collection({
    type: "base",
    name: "contacts",
    fields: [
      { name: "name", type: "text", required: true },
      { name: "email", type: "email" },
      { name: "phone", type: "text" },
      { name: "status", type: "select", maxSelect: 1, values: ["active", "on_hold"] },
      { name: "created", type: "autodate", onCreate: true },
      { name: "updated", type: "autodate", onCreate: true, onUpdate: true },
    ],
  });
  return app.save(contacts);
}, (app) => {
  return app.delete(app.findCollectionByNameOrId("contacts"));
});
