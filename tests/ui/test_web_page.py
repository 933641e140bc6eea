"""The demo page in a real browser: draw a digit, upload a photo, price a house, generate, see errors."""

from __future__ import annotations

from training.data import load_image_folder

from .conftest import SCREENSHOTS, tab_on


def _draw(page, strokes: list[list[tuple[float, float]]]) -> None:
    """Mouse strokes in canvas fractions (0-1), like a person drawing (scrolled to the canvas first:
    the mouse only reaches what the viewport shows, and the models table above it grows)."""
    canvas = page.locator("#digit-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    for stroke in strokes:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=8)
        page.mouse.up()


def _submit(page, form: str, **fields: str) -> None:
    """Fill a form's fields by name (a select picks its option) and submit it."""
    for name, value in fields.items():
        field = page.locator(f"#{form} [name={name}]")
        if field.evaluate("element => element.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    page.click(f"#{form} button[type=submit]")


def test_models_are_described_in_plain_words_with_their_cards_a_click_away(page):
    page.locator("#models li").first.wait_for()
    items = {item.locator("a").inner_text(): item.inner_text() for item in page.locator("#models li").all()}
    assert "reads handwritten digits: right on 9" in items["mnist-cnn"] and "version 1" in items["mnist-cnn"]
    assert "off by $" in items["house-price-gbm"] and "on FID against real ones" in items["diffusion"]
    assert "test_accuracy" not in page.locator("#models").inner_text()  # no raw metric keys
    link = page.locator("#models a", has_text="house-price-gbm")
    assert link.get_attribute("href") == "/models/house-price-gbm/card"
    card = page.request.get(link.evaluate("anchor => anchor.href"))
    assert card.ok and card.json()["model_card"]["intended_use"]


def test_draw_a_seven_and_classify(page):
    _draw(page, [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]])  # a 7: top bar, then the diagonal
    page.click("#digit-classify")
    answer = page.locator("#digit-answer")
    answer.filter(has_text="digit").wait_for()
    assert answer.inner_text().startswith("digit 7")
    assert page.locator("#digit-bars .bar").count() == 10
    assert "Like the training data" in page.locator("#digit-flag").inner_text()
    page.click("#digit-explain")
    page.locator("#digit-heat").wait_for(state="visible")
    assert page.locator("#digit-answer").inner_text().startswith("digit 7")
    assert page.locator("#digit-heat").evaluate("image => image.naturalWidth") == 280
    page.screenshot(path=str(SCREENSHOTS / "digits.png"), full_page=True)


def test_an_answer_is_contested_with_one_click(page, server):
    before = page.request.get(f"{server}/models/mnist-cnn/live-metrics").json()["answers"]
    _draw(page, [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]])
    page.click("#digit-classify")
    page.locator("#digit-contest button").first.wait_for()
    assert page.locator("#digit-contest button").count() == 10  # one per digit: the right one is one click
    page.click("#digit-contest button:text-is('1')")
    page.locator("#digit-contest", has_text="Thank you: stored as 1").wait_for()
    assert page.request.get(f"{server}/models/mnist-cnn/live-metrics").json()["answers"] == before + 1
    page.locator("#digits-panel").screenshot(path=str(SCREENSHOTS / "contest.png"))
    # The model's monitoring panel shows the feedback, the flags over time and the drift.
    monitoring = page.locator("#models li", has=page.locator("a", has_text="mnist-cnn")).first.locator("details.monitoring")
    monitoring.locator("summary").click()
    monitoring.locator("p", has_text="From people's feedback on").wait_for()
    assert "Flagged out of distribution" in monitoring.inner_text() and monitoring.locator("svg.curve").count() == 1
    monitoring.screenshot(path=str(SCREENSHOTS / "monitoring.png"))
    # A house takes a value: typed, then sent.
    _submit(page, "house-form")
    page.locator("#house-contest input").fill("4.2")
    page.click("#house-contest button")
    page.locator("#house-contest", has_text="Thank you: stored as 4.2").wait_for()


def test_a_scribble_is_flagged(page):
    _draw(page, [[(0.1, 0.1), (0.9, 0.3), (0.1, 0.5), (0.9, 0.7), (0.1, 0.9), (0.9, 0.1), (0.1, 0.9)]])
    page.click("#digit-classify")
    flag = page.locator("#digit-flag")
    flag.filter(has_text="training data").wait_for()
    assert flag.inner_text().startswith("Unlike the training data")


def test_a_classical_classifier_can_be_picked(page):
    options = page.locator("#digit-model option")
    options.first.wait_for(state="attached")
    names = options.all_inner_texts()
    assert names[0] == "mnist-cnn" and {"mnist-logreg", "mnist-knn", "mnist-tree", "mnist-forest"} <= set(names)
    page.select_option("#digit-model", "mnist-knn")
    _draw(page, [[(0.5, 0.15), (0.5, 0.85)]])  # a 1
    with page.expect_response(lambda response: "/digits/classify" in response.url) as answered:
        page.click("#digit-classify")
    assert answered.value.json().get("model", {}).get("name") == "mnist-knn", answered.value.text()
    page.locator("#digit-answer").filter(has_text="digit").wait_for()


def test_upload_a_photo(page):
    path = next(p for p, label in load_image_folder("val").samples if label == 1)  # a bee
    page.set_input_files("#image-file", path)
    page.locator("#image-answer li").first.wait_for()
    items = page.locator("#image-answer li").all_inner_texts()
    assert len(items) == 2 and {item.split(":")[0] for item in items} == {"ants", "bees"}
    assert "ants, bees" in page.locator("#image-labels").inner_text()  # what the model knows, from its card
    page.screenshot(path=str(SCREENSHOTS / "images.png"), full_page=True)


def test_price_a_house(page):
    _submit(page, "house-form")
    answer = page.locator("#house-answer")
    answer.filter(has_text="$").wait_for()
    assert "house-price-gbm" in answer.inner_text()
    assert page.locator("#house-interval").inner_text().startswith("90% prediction interval: $")
    assert "Like the training data" in page.locator("#house-flag").inner_text()
    page.locator("#house-why .bar").first.wait_for()
    assert page.locator("#house-why .bar").count() == 8
    assert "MedInc" in page.locator("#house-why").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "house.png"), full_page=True)


def test_an_unusual_house_is_flagged_with_its_feature(page):
    _submit(page, "house-form", MedInc="80")
    flag = page.locator("#house-flag")
    flag.filter(has_text="training data").wait_for()
    assert flag.inner_text().startswith("Unlike the training data") and "MedInc" in flag.inner_text()


def test_api_errors_are_readable(page):
    _submit(page, "house-form", Latitude="55")
    error = page.locator("#house-panel [data-error]")
    error.filter(has_text="Error").wait_for()
    assert "Latitude" in error.inner_text() and "42.5" in error.inner_text()
    assert "houses.0" not in error.inner_text()  # the field as the person typed it, not its path
    page.screenshot(path=str(SCREENSHOTS / "error.png"), full_page=True)


def test_a_new_error_replaces_the_old_answer(page):
    _submit(page, "house-form")
    page.locator("#house-answer").filter(has_text="$").wait_for()
    _submit(page, "house-form", Latitude="55")
    page.locator("#house-panel [data-error]").filter(has_text="Error").wait_for()
    assert page.locator("#house-answer").inner_text() == ""


def test_generate_a_diffusion_grid(page):
    _submit(page, "generate-form", model="diffusion", n="4", seed="7", digit="3", steps="5")
    page.locator("#generate-answer").filter(has_text="images in").wait_for()  # the result, not a preview
    image = page.locator("#generate-image")
    image.wait_for(state="visible")
    natural = page.evaluate("document.getElementById('generate-image').naturalWidth")
    page.wait_for_function(f"document.getElementById('generate-image').clientWidth === {4 * natural}")
    assert page.evaluate("getComputedStyle(document.getElementById('generate-image')).imageRendering") == "pixelated"
    assert "seed 7" in page.locator("#generate-answer").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "generate.png"), full_page=True)


def test_generation_runs_as_a_job_showing_its_progress_and_the_digits_emerging(page):
    _submit(page, "generate-form", model="diffusion", n="16", seed="5", digit="", steps="1000")
    page.wait_for_function("Number(document.getElementById('generate-image').dataset.previews) >= 2")
    page.screenshot(path=str(SCREENSHOTS / "generate-job.png"), full_page=True)
    assert "running" in page.locator("#generate-status").inner_text()
    page.locator("#generate-answer").filter(has_text="images in").wait_for(timeout=120_000)
    events = int(page.locator("#generate-progress").get_attribute("data-events"))
    previews = int(page.locator("#generate-image").get_attribute("data-previews"))
    assert events >= 5 and previews >= 2, (events, previews)
    assert "preview" not in (page.locator("#generate-image").get_attribute("class") or "")  # the result itself
    assert "seed 5" in page.locator("#generate-answer").inner_text()


def test_a_generation_job_can_be_cancelled(page):
    _submit(page, "generate-form", model="diffusion", n="64", seed="1", digit="", steps="1000")
    page.locator("#generate-status").filter(has_text="running").wait_for()
    page.click("#generate-cancel")
    page.locator("#generate-status").filter(has_text="cancelled").wait_for()
    assert page.locator("#generate-answer").inner_text() == ""


def test_one_click_examples_answer(page):
    page.locator("#digit-model option").first.wait_for(state="attached")
    page.click("#digits-panel .example[data-digit='1']")
    page.locator("#digit-answer").filter(has_text="digit").wait_for()
    assert page.locator("#digit-answer").inner_text().startswith("digit 1")
    page.click("#house-panel .example >> text=Fresno")
    page.locator("#house-answer").filter(has_text="$").wait_for()
    page.click("#forecast-panel .example[data-horizon='36']")
    page.locator("#forecast-answer").filter(has_text="next 36 months").wait_for()
    page.click("#generate-panel .example >> text=the GAN's digits")
    page.locator("#generate-answer").filter(has_text="16 images in").wait_for()
    page.screenshot(path=str(SCREENSHOTS / "examples.png"), full_page=True)


def test_a_digit_from_the_gan_is_drawn_by_its_conditional_twin(page):
    _submit(page, "generate-form", model="gan", n="4", digit="3")
    answer = page.locator("#generate-answer")
    answer.filter(has_text="images in").wait_for()
    assert "by gan-conditional " in answer.inner_text()


def test_forecast_is_drawn(page):
    history = ", ".join(str(100 + 3 * i + 20 * (i % 12 in (5, 6, 7))) for i in range(36))
    _submit(page, "forecast-form", history=history, horizon="6")
    page.locator("#forecast-answer").filter(has_text="next 6 months").wait_for()
    assert page.locator("#forecast-chart polyline").count() == 2
    assert page.locator("#forecast-chart").is_visible()
    band = page.locator("#forecast-chart polygon.band").get_attribute("points")
    assert len(band.split()) == 12  # six months' low ends, then their high ends
    assert "90% intervals" in page.locator("#forecast-answer").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "forecast.png"), full_page=True)


def test_vae_interpolation_strip(page):
    _submit(page, "interpolate-form", frames="6")
    image = page.locator("#interpolate-image")
    image.wait_for(state="visible")
    page.wait_for_function("document.getElementById('interpolate-image').naturalWidth > 0")
    page.screenshot(path=str(SCREENSHOTS / "interpolate.png"), full_page=True)


def test_quick_models_are_labelled_and_the_page_has_a_favicon(page):
    page.locator("#models li").first.wait_for()
    assert "quick" in page.locator("#models").inner_text()  # the suite's models are quick-profile
    icon = page.get_attribute("link[rel=icon]", "href")
    assert page.request.get(page.url.rstrip("/") + icon).status == 200


def test_fits_a_phone_without_horizontal_scrolling(browser, server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    tab = context.new_page()
    tab.goto(server + "/")
    tab.locator("#models li").first.wait_for()
    assert tab.evaluate("document.documentElement.scrollWidth") <= 390
    # A demo leads: its example buttons and its drawing area lie inside the first screen.
    for control in ("#digits-panel .example >> nth=0", "#digit-canvas"):
        box = tab.locator(control).bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= 844, (control, box)
    tab.screenshot(path=str(SCREENSHOTS / "phone-first-screen.png"))
    tab.screenshot(path=str(SCREENSHOTS / "phone.png"), full_page=True)
    context.close()


def test_the_openapi_page_tries_an_example_as_is(page, server):
    """/docs renders ZooServe's document, and "Try it out" with the documented example answers 200."""
    page.goto(server + "/docs")
    operation = page.locator("#operations-models-post_house_price_predict")
    operation.locator(".opblock-summary").click()
    operation.locator(".try-out__btn").click()
    operation.locator(".execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "200"
    answer = operation.locator(".live-responses-table .response .response-col_description").first
    assert "price_usd" in answer.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "openapi.png"), full_page=True)


def test_models_still_training_are_listed_with_their_progress(browser, server):
    """In a first run the table lists the models still to come, and the pickers offer only loaded ones."""
    coming = {"mnist-knn": {"state": "queued", "progress": 0.0, "seconds_left": 95},
              "diffusion": {"state": "training", "progress": 0.4, "seconds_left": 35}}

    def first_run_listing(route):
        listed = route.fetch().json()
        route.fulfill(json=[{"name": m["name"], **coming[m["name"]]} if m["name"] in coming else m for m in listed])

    with tab_on(browser, server + "/", lambda tab: tab.route("**/models", first_run_listing)) as tab:
        tab.locator("#models li.pending").first.wait_for()
        rows = {row.inner_text().split(":")[0].split(" ")[0]: row.inner_text()
                for row in tab.locator("#models li").all()}
        assert "training, 40% done, about 35 s left" in rows["diffusion"]
        assert "queued, 0% done, about 2 min left" in rows["mnist-knn"]
        assert "right on" in rows["mnist-cnn"]  # a loaded model keeps its description
        options = tab.locator("#digit-model option").all_inner_texts()
        assert "mnist-cnn" in options and "mnist-knn" not in options
        tab.screenshot(path=str(SCREENSHOTS / "first-run.png"), full_page=True)


def test_the_course_panel_shows_the_five_labs(page):
    figures = page.locator("#labs figure")
    figures.first.wait_for()
    assert figures.count() == 5
    for index in range(5):
        image = figures.nth(index).locator("img")
        image.scroll_into_view_if_needed()
        page.wait_for_function("image => image.complete && image.naturalWidth > 0", arg=image.element_handle())
    assert "vanishing gradients" in page.locator("#labs").inner_text().lower()
    page.locator("#course-panel").screenshot(path=str(SCREENSHOTS / "course.png"))


def test_a_trained_networks_learning_curve_opens_from_its_card(page):
    item = page.locator("#models li", has=page.locator("a", has_text="mnist-cnn")).first
    item.wait_for()
    item.locator("details.learning summary").click()
    charts = item.locator("svg.curve")
    charts.first.wait_for()
    assert charts.count() == 2 and "validation: error" in item.inner_text()
    # The loss chart: the training loss and the validation loss, one point an epoch each.
    assert charts.nth(0).locator("polyline.train").count() == charts.nth(0).locator("polyline.validation").count() == 1
    assert len(charts.nth(0).locator("polyline.validation").get_attribute("points").split()) >= 1
    classical = page.locator("#models li", has=page.locator("a", has_text="mnist-knn")).first
    classical.locator("details.learning summary").click()
    classical.locator("p", has_text="no curve to show").wait_for()
    item.screenshot(path=str(SCREENSHOTS / "learning-curve.png"))
    # The trees learn without epochs, but the curve over training-set size has fold error bars.
    trees = page.locator("#models li", has=page.locator("a", has_text="house-price-gbm")).first
    trees.locator("details.learning summary").click()
    by_size = trees.locator("svg.curve", has_text="by training rows")
    by_size.wait_for()
    assert by_size.locator("polyline").count() == 2 and by_size.locator("line.bar").count() == 2 * 4
    trees.screenshot(path=str(SCREENSHOTS / "learning-curve-by-size.png"))
