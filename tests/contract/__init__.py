"""The contract test: every model case passes the same checks (issue 8, item 5).

cases.py holds the registry, `CASES`; test_contract.py holds the checks, one test function each, parametrised over
every case (`pytest tests/contract -rsx` lists skips and known bugs; `-m "not slow"` leaves out the two
torch.compile checks).

To add a model, add one entry to cases.py:

    @case("my-vae", "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))",
          inputs=lambda: {"x": binary(B)},        # a fresh batch of B examples; scalars as plain numbers
          draws=["z"],                            # what explain() must say it draws ("draw z ~ ...")
          reference=my_vae_by_hand)               # optional: (declarations, inputs) -> [batch], same draw order
    def my_vae():
        torch.manual_seed(0)                      # fresh declarations, the same weights at every call
        return fm.Normal("q(z|x)", net=...), fm.Bernoulli("p(x|z)", net=...), fm.Normal("p(z)", ...)

or `case(...)(factory)` on an existing factory. Other fields: `options={...}` (keyword arguments of fm.compile),
`reference_grads=False` (a score-function surrogate: the reference's value only), `skip={"check": "why it cannot"}`
and `xfail={"check": "bug: what formula does wrong"}` (strict; delete it once formula is fixed). A check's name
is its test's name without `test_`: shape, finite, batch_of_one, gradients, terms, explain, ascii_round_trip,
latex_round_trip, compiled, fullgraph, state_dict, float64, meta_device, moved_to_meta, reference.
Declarations must have every parameter used by the formula (the gradients check asks that each gets a gradient),
and nets that follow their parameters' dtype (the float64 check): wrap a models.py net that takes integer labels
in cases.labels_one_hot.
"""
