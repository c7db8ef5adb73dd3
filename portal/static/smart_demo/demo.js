/* The demo SMART app: a standalone patient launch (open /smart-demo/?client_id=...) or an
   EHR launch (the portal's "Launch app" adds iss and launch), through the fhirclient
   library; then it reads the patient's observations, and shows that problems (a scope it
   did not ask for) are refused. */
(function () {
  "use strict";
  var body = document.body;
  var status = document.getElementById("status");

  function say(id, text, refused) {
    var node = document.getElementById(id);
    node.textContent = text;
    if (refused) node.className = "refused";
  }

  if (body.dataset.page === "launch") {
    var query = new URLSearchParams(window.location.search);
    var launch = query.get("launch");
    var scope = (launch ? "launch" : "launch/patient") +
      " openid fhirUser patient/Observation.rs";
    FHIR.oauth2.authorize({
      clientId: body.dataset.clientId || query.get("client_id"),
      scope: scope,
      iss: query.get("iss") || body.dataset.iss,
      launch: launch || undefined,
      redirectUri: body.dataset.redirect,
      pkceMode: "required"
    }).catch(function (error) { say("status", "Could not connect: " + error.message, true); });
    return;
  }

  FHIR.oauth2.ready().then(function (client) {
    say("status", "Connected.");
    say("patient", "Records of patient " + client.patient.id + ".");
    var list = document.getElementById("observations");
    client.request("Observation?patient=" + client.patient.id, { flat: true })
      .then(function (observations) {
        observations.forEach(function (o) {
          if (o.resourceType !== "Observation") return;
          var item = document.createElement("li");
          item.className = "observation";
          item.dataset.id = o.id;
          var value = o.valueQuantity ? o.valueQuantity.value + " " + (o.valueQuantity.unit || "") : "";
          item.textContent = ((o.code && (o.code.text || (o.code.coding || [{}])[0].display)) || "Observation") +
            (value ? ": " + value : "");
          list.appendChild(item);
        });
        body.dataset.observations = "loaded";
      })
      .catch(function (error) { say("status", "Reading failed: " + error.message, true); });
    client.request("Condition?patient=" + client.patient.id)
      .then(function () { say("conditions", "Problems were readable (unexpected).", false); body.dataset.conditions = "read"; })
      .catch(function () { say("conditions", "Not shared with this app.", true); body.dataset.conditions = "refused"; });
  }).catch(function (error) { say("status", "Not connected: " + error.message, true); });
})();
