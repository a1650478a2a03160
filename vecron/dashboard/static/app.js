// vecron dashboard: the few behaviours htmx does not give. Pages work without this file.
(function () {
  "use strict";
  var lastField = {};  // step index -> the text field last focused in that step

  function stepOf(el) {
    var fieldset = el.closest ? el.closest("fieldset.step") : null;
    return fieldset ? fieldset.getAttribute("data-step") : null;
  }

  document.addEventListener("focusin", function (event) {
    var el = event.target;
    if (el.matches && el.matches("[data-reference]")) {
      var step = stepOf(el);
      if (step !== null) { lastField[step] = el.name; }
    }
  });

  // A select that changes which fields exist (a step's type, an auth type, an
  // operation, the schedule type) re-renders the form instead of only the preview.
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.matches && el.matches("select[data-refresh]") && window.htmx) {
      event.stopPropagation();
      var form = el.form;
      window.htmx.ajax("POST", form.getAttribute("action"), {
        source: form, target: "#builder-main", swap: "outerHTML", values: {action: "refresh"}
      });
    }
  }, true);
  document.addEventListener("input", function (event) {
    var el = event.target;
    if (el.matches && el.matches("select[data-refresh], select.ref-picker")) {
      event.stopPropagation();
    }
  }, true);

  // The reference picker inserts {{…}} where the cursor was in the step's last field.
  document.addEventListener("change", function (event) {
    var picker = event.target;
    if (!(picker.matches && picker.matches("select.ref-picker")) || !picker.value) { return; }
    event.stopPropagation();
    var step = picker.getAttribute("data-step");
    var form = picker.form;
    var name = lastField[step];
    var field = name ? form.elements.namedItem(name) : null;
    if (!field) { field = form.querySelector('fieldset.step[data-step="' + step + '"] [data-reference]'); }
    if (field) {
      var start = field.selectionStart === null || field.selectionStart === undefined ? field.value.length : field.selectionStart;
      var end = field.selectionEnd === null || field.selectionEnd === undefined ? start : field.selectionEnd;
      // In a YAML field a bare {{…}} would read as a mapping: quote it.
      var text = field.getAttribute("data-reference") === "yaml" ? '"' + picker.value + '"' : picker.value;
      field.value = field.value.slice(0, start) + text + field.value.slice(end);
      field.focus();
      field.dispatchEvent(new Event("input", {bubbles: true}));
    }
    picker.value = "";
  }, true);

  // Copy the produced file; read an imported file into the text box.
  document.addEventListener("click", function (event) {
    if (event.target.id === "copy") {
      var output = document.getElementById("output");
      if (output && navigator.clipboard) {
        navigator.clipboard.writeText(output.textContent).then(function () {
          event.target.textContent = "Copied";
          setTimeout(function () { event.target.textContent = "Copy"; }, 1500);
        });
      }
    }
  });
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (input.id !== "import-file" || !input.files || !input.files[0]) { return; }
    var reader = new FileReader();
    reader.onload = function () { document.getElementById("import-text").value = reader.result; };
    reader.readAsText(input.files[0]);
  });

  function showCopy() {
    var copy = document.getElementById("copy");
    if (copy && navigator.clipboard) { copy.hidden = false; }
  }
  document.addEventListener("DOMContentLoaded", showCopy);
  document.addEventListener("htmx:afterSwap", showCopy);
})();
