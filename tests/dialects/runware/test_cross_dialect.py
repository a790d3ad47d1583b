"""One core behind every wire format: an image uploaded through one is the same Image in all."""

from __future__ import annotations

from tests import imagefactory
from tests.conftest import Api
from tests.dialects.photogpt.helpers import (
    PREFIX,
    assert_error,
    create_model,
    ok_result,
    upload,
)
from tests.dialects.runware.helpers import PATH, bare, upload_task


def test_uploads_through_each_dialect_are_read_through_the_others(api: Api) -> None:
    c, h = api.client, api.headers
    model_id = create_model(c, api.key)
    photo = ok_result(upload(c, api.key, model_id, imagefactory.jpeg(30, 20)))
    task = upload_task(bare(imagefactory.png(40, 10)))
    runware = c.post(PATH, json=[task], headers=h).json()["data"][0]

    # the native API sees both
    native_photo = c.get(f"/v1/images/{photo['id']}", headers=h).json()
    assert (native_photo["type"], native_photo["modelId"]) == ("modelInput", model_id)
    assert (native_photo["width"], native_photo["height"]) == (30, 20)
    native_runware = c.get(f"/v1/images/{runware['imageUUID']}", headers=h).json()
    assert (native_runware["type"], native_runware["modelId"]) == ("auxiliaryType", None)
    assert (native_runware["width"], native_runware["height"]) == (40, 10)
    listed = c.get(f"/v1/models/{model_id}/images", headers=h).json()
    assert [i["id"] for i in listed["items"]] == [photo["id"]]

    # PhotoGPT reads the Runware upload (a reference image without a model)
    seen = ok_result(c.get(f"{PREFIX}/images/{runware['imageUUID']}", headers=h))
    assert (seen["type"], seen["modelID"], seen["id"]) == (
        "auxiliaryType",
        None,
        runware["imageUUID"],
    )
    assert c.get(seen["url"]).content == c.get(native_runware["url"]).content  # same original

    # Runware uses the PhotoGPT upload by its id (imageUUID in a task)
    reused = c.post(PATH, json=[upload_task(photo["id"])], headers=h).json()["data"][0]
    assert reused["imageUUID"] == photo["id"]
    assert c.get(reused["imageURL"]).status_code == 200

    # a delete through one is a delete everywhere
    ok_result(c.delete(f"{PREFIX}/images/{runware['imageUUID']}", headers=h))
    assert c.get(f"/v1/images/{runware['imageUUID']}", headers=h).status_code == 404
    gone = c.post(PATH, json=[upload_task(runware["imageUUID"])], headers=h)
    assert gone.json()["errors"][0]["code"] == "notFound"
    assert c.delete(f"/v1/images/{photo['id']}", headers=h).status_code == 204
    assert_error(c.get(f"{PREFIX}/images/{photo['id']}", headers=h), 404, "not_found")


def test_each_dialect_keeps_its_own_error_shape(api: Api) -> None:
    c = api.client
    native = c.get("/v1/images/nope", headers=api.headers)
    assert native.status_code == 404
    assert native.json()["error"]["code"] == "not_found"
    assert_error(c.get(f"{PREFIX}/images/nope", headers=api.headers), 404, "not_found")
    runware = c.post(PATH, json=[upload_task(bare(b"x"))], headers={"Authorization": "Bearer z"})
    assert runware.status_code == 401
    assert runware.json()["errors"][0]["code"] == "invalidApiKey"
